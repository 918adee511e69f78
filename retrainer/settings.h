/* settings: the retrainer's configuration table and the values it fills. */
#ifndef RETRAINER_SETTINGS_H
#define RETRAINER_SETTINGS_H

#include "app.h"
#include "config.h"

extern app_config_t settings;
extern const config_item_t settings_items[];
extern const size_t settings_nitems;

#endif

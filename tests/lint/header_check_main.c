/* The program around the header translation units of tests/lint/meson.build:
 * they are checked when they compile, so running it only reports success. */
int main(void)
{
    return 0;
}

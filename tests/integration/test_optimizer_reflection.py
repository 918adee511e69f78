"""gRPC server reflection on the optimizer (issue 15, item 10), with grpcio's
own reflection client (grpcio-reflection) and no optimizer.proto: the
descriptors come from the server, and a call is then made with message
classes built from them alone, as grpcurl does."""
import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICE = "neuralhive.optimizer.v1.OptimizerAgent"


@pytest.fixture
def channel(optimizer):
    optimizer.start()
    with grpc.insecure_channel(f"127.0.0.1:{optimizer.env['GRPC_PORT']}") as ch:
        grpc.channel_ready_future(ch).result(timeout=15)
        yield ch


def test_list_services_and_a_call_built_from_reflection_alone(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    assert SERVICE in db.get_services()
    pool = descriptor_pool.DescriptorPool(db)
    svc = pool.FindServiceByName(SERVICE)
    assert {m.name for m in svc.methods} == {"TriggerOptimization", "GetOptimizationStatus",
                                              "ListOptimizations", "RollbackOptimization",
                                              "GetStatistics", "HealthCheck"}
    method = svc.methods_by_name["RollbackOptimization"]
    assert method.input_type.full_name == "neuralhive.optimizer.v1.RollbackOptimizationRequest"
    assert "optimization_id" in method.input_type.fields_by_name
    # The call of seed 000's runbook, RollbackOptimization of an unknown id: NOT_FOUND from the server.
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(f"/{SERVICE}/RollbackOptimization", request_serializer=req_cls.SerializeToString,
                               response_deserializer=resp_cls.FromString)
    with pytest.raises(grpc.RpcError) as e:
        call(req_cls(optimization_id="opt-123"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # HealthCheck the same way: a message with an enum field, decoded from the reflected descriptor.
    health = svc.methods_by_name["HealthCheck"]
    hreq = message_factory.GetMessageClass(health.input_type)
    hresp = message_factory.GetMessageClass(health.output_type)
    resp = channel.unary_unary(f"/{SERVICE}/HealthCheck", request_serializer=hreq.SerializeToString,
                               response_deserializer=hresp.FromString)(hreq(), timeout=10)
    assert health.output_type.fields_by_name["status"].enum_type.values_by_number[resp.status].name == "SERVING"


def test_several_requests_on_one_stream_and_errors(channel):
    """One bidirectional stream, one response per request, in order; unknown
    symbols and files get error_response NOT_FOUND, not a broken stream."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    reqs = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="neuralhive.optimizer.v1.OptimizerAgent.GetStatistics"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="optimizer.proto"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="other.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="neuralhive.optimizer.v1.HealthCheckResponse.ServingStatus"),
    ]
    resps = list(stub.ServerReflectionInfo(iter(reqs), timeout=15))
    assert len(resps) == len(reqs)
    for req, resp in zip(reqs, resps):
        assert resp.original_request == req
    assert [s.name for s in resps[0].list_services_response.service] == [SERVICE]
    for i in (1, 3, 5):
        (fdp,) = resps[i].file_descriptor_response.file_descriptor_proto
        f = descriptor_pb2.FileDescriptorProto.FromString(fdp)
        assert f.name == "optimizer.proto" and f.package == "neuralhive.optimizer.v1"
        assert [s.name for s in f.service] == ["OptimizerAgent"]
    for i in (2, 4):
        assert resps[i].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]

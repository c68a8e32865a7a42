"""taskmesh microservice chassis: what every process shares, and nothing of the domain.

settings     environment (and `<NAME>_FILE`) configuration, placeholder-secret guard
logging      structlog JSON lines for structlog and stdlib loggers alike, with trace ids
tracing      OpenTelemetry: the process's tracer provider, OTLP export, W3C propagation
context      request id, caller identity and trace context; gRPC metadata keys
identity     access-token verification (JWKS), the Caller of an RPC
errors       DomainError and its generic kinds, each with its gRPC status
grpc_server  server with health, reflection, interceptors and graceful shutdown
grpc_client  channels with deadlines, idempotent retries, context forwarding, client spans
mongo        the async MongoDB client, index creation, ping
metrics      Prometheus RPC metrics (server and client) and the /metrics endpoint
service      a service's life from settings to shutdown (GrpcService, ServiceParts)
events       the event backbone: outbox, relay, consumers, dead letters
cache_keys   Redis keys several processes share (the task-list cache generation)
testing      pytest fixtures and the contract every service's tests run
"""

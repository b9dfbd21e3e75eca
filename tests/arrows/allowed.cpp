// Compiles: the queue may include the relay client and the core (README.md "Layout").
#include "submission/core/reply.hpp"
#include "submission/relay/relay_client.hpp"

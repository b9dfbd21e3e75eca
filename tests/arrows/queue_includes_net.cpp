// Must not compile: submission/queue may not include submission/net (README.md "Layout").
#include "submission/net/server.hpp"

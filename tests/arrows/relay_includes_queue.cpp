// Must not compile: the relay client does not know the queue (README.md "Layout").
#include "submission/queue/spool.hpp"

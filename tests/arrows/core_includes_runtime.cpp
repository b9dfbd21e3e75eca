// Must not compile: submission/core is standard library only (README.md "Layout").
#include "submission/runtime/log.hpp"

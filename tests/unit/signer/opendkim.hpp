// libopendkim's C header for C++: it spells booleans `_Bool`, which C++ does not have.
// Include this instead of <opendkim/dkim.h>. Only the tests use libopendkim: it verifies
// every signature truefrom makes.
#pragma once

#define _Bool bool  // NOLINT(bugprone-reserved-identifier): the C header's own spelling
#include <opendkim/dkim.h>
#undef _Bool

// Must not compile: auth uses nothing of submission/ (README.md "Layout").
#include "submission/core/address.hpp"

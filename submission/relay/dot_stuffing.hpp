// How a message goes to the relay. DATA (RFC 5321 4.5.2): a line that starts with "." gets
// one more, and the data ends with CRLF "." CRLF (a CRLF added first when the message does
// not end with one). BDAT (RFC 3030): the octets as they are, in one chunk of known size,
// with the same CRLF added, so that the relay receives the same message either way.
// Sans-IO; no copy of the message: the pieces point into the parts and into static storage.
#pragma once

#include <string_view>
#include <vector>

namespace truefrom::relay {

/// Appends to `out` the pieces whose concatenation is the dot-stuffed, terminated message
/// `parts` (concatenated).
void dot_stuff(const std::vector<std::string_view>& parts, std::vector<std::string_view>& out);

/// Appends to `out` the pieces of the single "BDAT <size> LAST" chunk of the message `parts`
/// (concatenated) and returns its size in octets.
std::size_t chunk(const std::vector<std::string_view>& parts, std::vector<std::string_view>& out);

}  // namespace truefrom::relay

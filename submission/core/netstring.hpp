// Netstrings (D. J. Bernstein's "LEN:DATA,"), the framing of Postfix's socketmap protocol
// (socketmap_table(5)). Sans-IO: fed bytes, yields complete strings.
// Thread-safety: one reader per connection.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace truefrom::smtp {

class NetstringReader {
 public:
  enum class Result { kMore, kDone, kError };
  explicit NetstringReader(std::size_t max_length) : max_(max_length) {}
  /// Appends input.
  void feed(std::string_view bytes) { buffer_ += bytes; }
  /// kDone: `out` holds the next string (consumed from the buffer). kMore: feed more.
  /// kError: malformed or longer than max_length (`error` says which); the stream is lost.
  Result next(std::string& out, std::string& error);

 private:
  std::size_t max_;
  std::string buffer_;
};

/// "LEN:DATA,"
std::string netstring(std::string_view data);

}  // namespace truefrom::smtp

// Reads SMTP replies from a server (RFC 5321 4.2): multiline "250-..." continuation lines
// up to the final "250 ..." line, with the optional RFC 3463 enhanced status code.
// Sans-IO: fed line by line. Thread-safety: one instance per connection.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "submission/core/reply.hpp"

namespace truefrom::relay {

class ReplyParser {
 public:
  enum class Result { kMore, kDone, kError };
  /// Feeds one line without its CRLF. kDone: reply() holds the complete reply.
  Result feed(std::string_view line);
  const smtp::Reply& reply() const { return reply_; }
  /// Clears state for the next reply.
  void reset();

 private:
  smtp::Reply reply_;
  int code_ = 0;
  bool started_ = false;
};

}  // namespace truefrom::relay

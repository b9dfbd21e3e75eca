// Reply: the one way truefrom speaks to an SMTP client.
//
// RFC 5321 4.2 (reply lines, multiline form "250-" ... "250 "), RFC 3463 / RFC 2034
// (enhanced status codes). A Reply is a plain value; Session serializes it.
// Thread-safety: a value type, no shared state.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace truefrom::smtp {

/// RFC 3463 enhanced status code "class.subject.detail", e.g. {5,7,1}.
struct EnhancedStatus {
  int cls = 0;
  int subject = 0;
  int detail = 0;
  friend bool operator==(const EnhancedStatus&, const EnhancedStatus&) = default;
};

/// An SMTP reply. `text` may hold several lines separated by '\n'; each becomes one reply
/// line. `status` is absent only where RFC 2034 forbids it (greeting, EHLO, 334).
struct Reply {
  int code = 0;
  std::optional<EnhancedStatus> status;
  std::string text;
  /// The connection closes once this reply is written.
  bool close_after = false;

  Reply() = default;
  Reply(int c, EnhancedStatus s, std::string t, bool close = false)
      : code(c), status(s), text(std::move(t)), close_after(close) {}
  /// A reply without an enhanced status code (greeting, EHLO, 334 challenges).
  static Reply plain(int c, std::string t, bool close = false);

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }

  /// Wire form: every line "CODE-..." except the last "CODE ...", each ended by CRLF.
  /// CR and LF inside a line are never emitted (text from peers cannot inject lines).
  std::string serialize() const;
  /// One line for logs and reports: "CODE X.Y.Z text", the text's lines joined by spaces.
  std::string summary() const;
};

/// "x.y.z" -> EnhancedStatus; nullopt when `s` is not a valid RFC 3463 code.
std::optional<EnhancedStatus> parse_enhanced_status(std::string_view s);

}  // namespace truefrom::smtp

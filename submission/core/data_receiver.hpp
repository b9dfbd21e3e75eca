// DATA receiver: turns the bytes after "354" into message content (RFC 5321 4.1.1.4,
// 4.5.2 dot-unstuffing) and finds the one true end of data, CRLF "." CRLF.
//
// SMTP smuggling defence (RFC 5321 2.3.8): only CRLF ends a line. A bare LF or bare CR never
// starts a line, so "\n.\n", "\r.\n" and "\n.\r\n" are never the end; a message holding one is
// marked and refused at the real end. Lines over 1000 octets (RFC 5321 4.5.3.1.6), content
// over the size limit and NUL octets (no SMTP text may hold one: RFC 5322 3.5, RFC 6152 2;
// a lenient relay might end data at CRLF NUL "." CRLF) are marked too; content past the
// limit is counted, not kept.
// Thread-safety: one instance per session, not shared.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace truefrom::smtp {

class DataReceiver {
 public:
  /// Why a received message is refused (the first problem seen wins).
  enum class Defect { kNone, kBareNewline, kLineTooLong, kTooBig, kNul };

  struct Progress {
    std::size_t consumed = 0;  ///< input octets used
    bool done = false;         ///< the end-of-data line was consumed
  };

  explicit DataReceiver(std::size_t max_size) : max_size_(max_size) {}

  /// Starts a new message.
  void reset();
  /// Consumes `in` up to and including the end of data; appends content (unstuffed, CRLF
  /// line ends kept) to `out`, unless a defect has been found.
  Progress consume(std::string_view in, std::string& out);

  Defect defect() const { return defect_; }
  /// Content octets seen, including those discarded past the limit.
  std::size_t size() const { return size_; }

 private:
  enum class State { kLineStart, kDot, kDotCr, kInLine, kCr };
  std::size_t whole_lines(std::string_view in, std::size_t i, std::string& out);
  void emit(char c, std::string& out);
  void run(std::string_view in, std::size_t i, std::size_t j, std::string& out);
  void mark(Defect d);

  std::size_t max_size_;
  State state_ = State::kLineStart;
  Defect defect_ = Defect::kNone;
  std::size_t size_ = 0;
  std::size_t line_length_ = 0;
};

}  // namespace truefrom::smtp

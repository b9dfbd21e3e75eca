// The SMTP server side of one truefrom-benchsink connection, without sockets: bytes in,
// replies out (RFC 5321; pipelining-safe per RFC 2920: every complete line given is
// answered, in order; DATA, and BDAT per RFC 3030 when CHUNKING is offered). Counts
// messages and octets; keeps the messages when asked to.
// Thread-safety: one object per connection, used by one thread.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace truefrom::bench {

// A command line longer than this without CRLF ends the session (RFC 5321 4.5.3.1.4 allows
// 512 octets; this is generous for extensions).
constexpr std::size_t kMaxCommandLine = 64 * 1024;
// A message text line longer than this is passed on in pieces instead of buffered whole.
constexpr std::size_t kMaxPendingDataLine = 64 * 1024;
constexpr std::size_t kAdvertisedSize = 1024ull * 1024 * 1024;

class SinkProtocol {
 public:
  SinkProtocol(const std::string& hostname, bool keep_messages, bool chunking)
      : hostname_(hostname), keep_messages_(keep_messages), chunking_(chunking) {}

  std::string greeting() const { return "220 " + hostname_ + " ESMTP truefrom-benchsink\r\n"; }

  /// Handles every complete line of `in`, appending replies to `out`. Returns how many
  /// octets were used; the rest is an incomplete line to be given again with more bytes.
  std::size_t consume(std::string_view in, std::string& out) {
    std::size_t pos = 0;
    while (pos < in.size() && !quit_) {
      if (chunk_left_ > 0) {  // BDAT octets, taken as they are
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, in.size() - pos));
        if (recipients_ > 0) add_text(in.substr(pos, take), false);
        pos += take;
        chunk_left_ -= take;
        if (chunk_left_ == 0) end_of_chunk(out);
        continue;
      }
      const std::size_t eol = in.find("\r\n", pos);
      if (in_data_) {
        if (eol == std::string_view::npos) {
          // Keep the last octet: it may be the CR of a CRLF.
          if (in.size() - pos > kMaxPendingDataLine) {
            const std::size_t take = in.size() - pos - 1;
            add_text(in.substr(pos, take), false);
            pos += take;
            line_start_ = false;
          }
          break;
        }
        const std::string_view line = in.substr(pos, eol - pos);
        pos = eol + 2;
        if (line_start_ && line == ".") {  // RFC 5321 4.1.1.4
          end_of_message(out);
          continue;
        }
        // RFC 5321 4.5.2: a leading "." of a line was doubled by the client.
        add_text(line_start_ && !line.empty() && line[0] == '.' ? line.substr(1) : line, true);
        line_start_ = true;
        continue;
      }
      if (eol == std::string_view::npos) {
        if (in.size() - pos > kMaxCommandLine) {
          out += "500 5.5.2 Line too long\r\n";
          quit_ = true;
        }
        break;
      }
      command(in.substr(pos, eol - pos), out);
      pos = eol + 2;
    }
    return pos;
  }

  bool quit() const { return quit_; }
  std::uint64_t take_completed() { return std::exchange(completed_, 0); }
  std::uint64_t take_octets() { return std::exchange(octets_, 0); }
  std::vector<std::string>& kept() { return kept_; }

 private:
  static bool is_verb(std::string_view line, std::string_view verb) {
    if (line.size() < verb.size()) return false;
    if (line.size() > verb.size() && line[verb.size()] != ' ') return false;
    for (std::size_t i = 0; i < verb.size(); ++i) {
      const char c = line[i];
      if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c) != verb[i]) return false;
    }
    return true;
  }

  void command(std::string_view line, std::string& out) {
    if (is_verb(line, "EHLO")) {
      reset();
      out += "250-" + hostname_ + "\r\n250-PIPELINING\r\n";
      if (chunking_) out += "250-CHUNKING\r\n";
      out += "250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE " +
             std::to_string(kAdvertisedSize) + "\r\n";
    } else if (is_verb(line, "HELO")) {
      reset();
      out += "250 " + hostname_ + "\r\n";
    } else if (is_verb(line, "MAIL")) {
      if (has_sender_) {
        out += "503 5.5.1 Nested MAIL command\r\n";
      } else {
        has_sender_ = true;
        out += "250 2.1.0 Ok\r\n";
      }
    } else if (is_verb(line, "RCPT")) {
      if (!has_sender_) {
        out += "503 5.5.1 Need MAIL before RCPT\r\n";
      } else {
        ++recipients_;
        out += "250 2.1.5 Ok\r\n";
      }
    } else if (is_verb(line, "DATA")) {
      if (recipients_ == 0) {  // RFC 2920 3.1: a pipelined DATA after failed RCPTs
        out += "503 5.5.1 No valid recipients\r\n";
      } else {
        in_data_ = true;
        line_start_ = true;
        out += "354 End data with <CR><LF>.<CR><LF>\r\n";
      }
    } else if (chunking_ && is_verb(line, "BDAT")) {
      bdat(line.substr(4), out);
    } else if (is_verb(line, "RSET")) {
      reset();
      out += "250 2.0.0 Ok\r\n";
    } else if (is_verb(line, "NOOP")) {
      out += "250 2.0.0 Ok\r\n";
    } else if (is_verb(line, "QUIT")) {
      out += "221 2.0.0 Bye\r\n";
      quit_ = true;
    } else if (is_verb(line, "VRFY")) {
      out += "252 2.5.0 Cannot verify, send some mail\r\n";
    } else {
      out += "502 5.5.1 Command not implemented\r\n";
    }
  }

  // "BDAT <size> [LAST]" (RFC 3030): the next <size> octets are message text.
  void bdat(std::string_view args, std::string& out) {
    while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
    std::uint64_t size = 0;
    const auto [end, ec] = std::from_chars(args.data(), args.data() + args.size(), size);
    std::string_view rest = args.substr(static_cast<std::size_t>(end - args.data()));
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const bool last = is_verb(rest, "LAST") && rest.size() == 4;
    if (ec != std::errc() || end == args.data() || (!rest.empty() && !last)) {
      // The chunk's size is unknown, so what follows cannot be told apart from commands.
      out += "501 5.5.4 Syntax: BDAT size [LAST]\r\n";
      quit_ = true;
      return;
    }
    chunk_left_ = size;
    chunk_last_ = last;
    if (size == 0) end_of_chunk(out);
  }

  void end_of_chunk(std::string& out) {
    if (recipients_ == 0) {
      out += "554 5.5.1 No valid recipients\r\n";
      reset();
    } else if (chunk_last_) {
      end_of_message(out);
    } else {
      out += "250 2.0.0 Chunk received\r\n";
    }
  }

  void add_text(std::string_view text, bool line_end) {
    octets_ += text.size() + (line_end ? 2 : 0);
    if (!keep_messages_) return;
    message_.append(text);
    if (line_end) message_ += "\r\n";
  }

  void end_of_message(std::string& out) {
    ++completed_;
    if (keep_messages_) kept_.push_back(std::move(message_));
    message_.clear();
    reset();
    out += "250 2.0.0 Ok: received\r\n";
  }

  void reset() {
    in_data_ = false;
    chunk_left_ = 0;
    chunk_last_ = false;
    has_sender_ = false;
    recipients_ = 0;
  }

  const std::string& hostname_;
  bool keep_messages_;
  bool chunking_;
  bool in_data_ = false;
  bool chunk_last_ = false;
  std::uint64_t chunk_left_ = 0;  // BDAT octets still to come
  bool line_start_ = true;
  bool has_sender_ = false;
  bool quit_ = false;
  std::uint64_t recipients_ = 0;
  std::uint64_t completed_ = 0;
  std::uint64_t octets_ = 0;
  std::string message_;
  std::vector<std::string> kept_;
};

}  // namespace truefrom::bench

// The golden client dialogues of tests/golden/relay/*.md (format in
// tests/golden/relay/README.md): parsing a file into cases, and playing a case against a
// ClientSession with the relay's bytes cut where the caller says.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "submission/relay/client_session.hpp"

namespace truefrom::relay::golden {

struct Transaction {
  Envelope envelope;
  std::vector<std::string> parts;  // the message, in pieces
  bool all_or_nothing = false;
  bool check = false;  // the reuse check (ClientSession::check) before it
};

/// What the relay sends between two things our client says: its bytes, then perhaps the end
/// of the stream.
struct Turn {
  std::vector<std::string> lines;  // as written in the file (S: and -- lines)
  std::string bytes;
  bool closes = false;
};

struct Case {
  std::string name;
  ClientConfig config;
  std::vector<Transaction> transactions;
  std::vector<Turn> turns;
  std::string expected;        // the dialogue as written (S:, C:, => and -- lines)
  std::size_t begin = 0;       // the "### " line
  std::size_t header_end = 0;  // file lines [begin, header_end) are the heading and options
  std::size_t end = 0;         // file lines [header_end, end) are the dialogue
  std::string error;           // a malformed case
};

/// The cases of one file's lines.
std::vector<Case> parse(const std::vector<std::string>& lines);

/// Plays `c`; `cuts` (positions in the concatenated bytes of all turns) split the relay's
/// bytes into separate receive() calls (every turn is one call at least); `byte_by_byte`
/// feeds one octet at a time. Returns the dialogue in the file's form.
std::string play(const Case& c, const std::vector<std::size_t>& cuts, bool byte_by_byte);

/// Escaping of a line's octets in the file form (\r \n \t \\ \xNN).
std::string escape(std::string_view bytes);
/// The inverse; `crlf` is false when the line ends with a lone backslash (no CRLF after it).
std::string unescape(std::string_view text, bool& crlf);

}  // namespace truefrom::relay::golden

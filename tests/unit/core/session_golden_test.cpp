// Golden session dialogues: every tests/golden/session/*.md file (format: tests/golden/
// README.md) is a list of cases, each a C:/S: dialogue with the session options and the
// transport's decisions in `%` lines. Each case runs
//   - line by line (one read per C: line): the recording, rendered as the case's lines,
//     must be the case as written;
//   - whole (one read per part between `-- tls` lines), byte by byte, and at random splits
//     (seeded: TRUEFROM_TEST_SEED, printed): the same records in the same order.
// TRUEFROM_REGENERATE=1 rewrites the S:/M:/-- lines from what the code does; read the diff.
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "session_golden_driver.hpp"

namespace truefrom::smtp::golden {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::path(TRUEFROM_SOURCE_DIR) / "tests" / "golden" / "session";
constexpr std::string_view kIndent = "    ";
constexpr int kRandomRounds = 20;

std::uint32_t test_seed() {
  static const std::uint32_t kSeed = [] {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, before any test starts a thread
    const char* text = std::getenv("TRUEFROM_TEST_SEED");
    std::uint32_t s = 0;
    const std::string_view t = text == nullptr ? "" : text;
    if (t.empty() || std::from_chars(t.data(), t.data() + t.size(), s).ec != std::errc{}) {
      s = std::random_device{}();
    }
    std::cout << "session dialogues: random splits from TRUEFROM_TEST_SEED=" << s << "\n";
    return s;
  }();
  return kSeed;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

/// `\xHH` at text[i] (the 'x'): appends the octet and moves i to its last digit; returns an
/// error text, empty when it is one.
std::string unescape_hex(std::string_view text, std::size_t& i, std::string& out) {
  const std::string_view hex = text.substr(i + 1, 2);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), value, 16);
  if (hex.size() != 2 || ec != std::errc{} || end != hex.data() + 2) {
    return "\\x needs two hex digits";
  }
  out += static_cast<char>(value);
  i += 2;
  return "";
}

/// `\{N*TEXT}` at text[i] (the '{'): appends TEXT (no escapes, no '}') N times and moves i
/// to the '}'; returns an error text, empty when it is one.
std::string unescape_repeat(std::string_view text, std::size_t& i, std::string& out) {
  const auto star = text.find('*', i);
  const auto close = text.find('}', i);
  if (star == std::string_view::npos || close == std::string_view::npos || star > close) {
    return "\\{ needs the form \\{N*TEXT}";
  }
  const std::string_view count = text.substr(i + 1, star - i - 1);
  int n = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (ec != std::errc{} || end != count.data() + count.size() || n <= 0) {
    return "\\{N*TEXT}: N is not a positive number";
  }
  for (int k = 0; k < n; ++k) out += text.substr(star + 1, close - star - 1);
  i = close;
  return "";
}

/// The escape at text[i] (after its backslash): appends what it stands for and moves i to
/// its last character; `\c` clears `crlf`. Returns an error text, empty when it is one.
std::string unescape_one(std::string_view text, std::size_t& i, std::string& out, bool& crlf) {
  switch (text[i]) {
    case '\\':
      out += '\\';
      return "";
    case 'r':
      out += '\r';
      return "";
    case 'n':
      out += '\n';
      return "";
    case 't':
      out += '\t';
      return "";
    case 'x':
      return unescape_hex(text, i, out);
    case '{':
      return unescape_repeat(text, i, out);
    case 'c':
      crlf = false;
      return i + 1 == text.size() ? "" : "\\c (no CRLF) must end the line";
    default:
      return std::string("unknown escape \\") + text[i];
  }
}

/// C: text -> the octets the client sends (see README: escapes, \{N*TEXT}, \c).
std::string unescape_client(std::string_view text, std::string& error) {
  std::string out;
  bool crlf = true;
  for (std::size_t i = 0; i < text.size() && error.empty(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
    } else if (++i == text.size()) {
      error = "a backslash ends the line";
    } else {
      error = unescape_one(text, i, out, crlf);
    }
  }
  if (crlf) out += "\r\n";
  return out;
}

/// "553 5.7.1 text" -> Reply (the enhanced code is optional).
std::optional<Reply> parse_reply(std::string_view text) {
  if (text.size() < 3 || !std::all_of(text.begin(), text.begin() + 3, ::isdigit)) return {};
  const int code = std::stoi(std::string(text.substr(0, 3)));
  std::string_view rest = text.substr(3);
  if (!rest.empty() && rest[0] != ' ') return {};
  if (!rest.empty()) rest.remove_prefix(1);
  const auto space = rest.find(' ');
  if (auto status = parse_enhanced_status(rest.substr(0, space))) {
    return Reply{code, *status,
                 std::string(space == std::string_view::npos ? "" : rest.substr(space + 1))};
  }
  return Reply::plain(code, std::string(rest));
}

struct Settings {
  SessionConfig config;
  Transport transport;
};

/// `% option NAME=VALUE` or `% option NAME`; returns an error text, empty when understood.
std::string apply_option(const std::string& rest, SessionConfig& config) {
  const auto eq = rest.find('=');
  const std::string name = rest.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : rest.substr(eq + 1);
  std::size_t number = 0;
  const bool numeric =
      std::from_chars(value.data(), value.data() + value.size(), number).ec == std::errc{};
  if (name == "hostname") {
    config.hostname = value;
  } else if (name == "auth_mechanisms") {
    config.auth_mechanisms = value;
  } else if (name == "implicit_tls" && value.empty()) {
    config.implicit_tls = true;
  } else if (!numeric) {
    return "unknown option or not a number: " + rest;
  } else if (name == "max_message_size") {
    config.max_message_size = number;
  } else if (name == "max_recipients") {
    config.max_recipients = number;
  } else if (name == "max_errors") {
    config.max_errors = static_cast<int>(number);
  } else if (name == "max_auth_failures") {
    config.max_auth_failures = static_cast<int>(number);
  } else {
    return "unknown option: " + rest;
  }
  return "";
}

/// Applies one `%` line; returns an error text, empty when it was understood.
/// `fresh` lists the decision kinds this block has not set yet (a block's first `% mail`
/// replaces the inherited list instead of appending to it).
std::string apply(std::string_view line, Settings& s, std::vector<std::string>& fresh) {
  std::istringstream in{std::string(line)};
  std::string word;
  in >> word;
  std::string rest;
  std::getline(in >> std::ws, rest);
  if (word == "option") return apply_option(rest, s.config);
  if (word == "auth") {
    std::istringstream a{rest};
    if (!(a >> s.transport.user >> s.transport.password)) return "% auth LOGIN PASSWORD";
    return "";
  }
  auto reply = parse_reply(rest);
  if (!reply) return "not a reply: " + rest;
  if (word == "auth-failure") {
    s.transport.auth_failure = *reply;
    return "";
  }
  std::vector<Reply>* list = word == "mail"   ? &s.transport.mail
                             : word == "rcpt" ? &s.transport.rcpt
                             : word == "data" ? &s.transport.data
                                              : nullptr;
  if (list == nullptr) return "unknown line: % " + std::string(line);
  if (auto it = std::find(fresh.begin(), fresh.end(), word); it != fresh.end()) {
    list->clear();
    fresh.erase(it);
  }
  list->push_back(*reply);
  return "";
}

struct Case {
  std::string file;  // its file's name, for messages
  std::string name;
  int line = 0;                        // of its ### line, 1-based
  std::vector<std::string> text;       // the case's lines as written
  std::vector<std::string> head;       // lines before the dialogue (### line, prose, % lines)
  std::vector<std::string> client;     // C: lines as written (without indentation)
  std::vector<std::string> bytes;      // what each C: line sends
  std::vector<std::size_t> tls_after;  // a `-- tls` line follows client line i
  std::vector<std::string> tail;       // blank lines after the dialogue
  Settings settings;
  std::vector<std::string> errors;
};

struct File {
  std::vector<std::string> preamble;
  std::vector<Case> cases;
  std::vector<std::string> errors;
};

std::string strip_indent(const std::string& line) {
  return starts_with(line, kIndent) ? line.substr(kIndent.size()) : line;
}

bool is_dialogue(std::string_view l) {
  return starts_with(l, "C:") || starts_with(l, "S:") || starts_with(l, "M:") || l == "-- tls" ||
         l == "-- close";
}

/// One dialogue line of case `c` (already known to be one).
void add_dialogue_line(Case& c, const std::string& l, std::size_t line_index) {
  const std::string where = c.file + ":" + std::to_string(line_index + 1) + ": ";
  if (starts_with(l, "C:")) {
    const std::string text = l.size() > 2 && l[2] == ' ' ? l.substr(3) : l.substr(2);
    std::string error;
    c.bytes.push_back(unescape_client(text, error));
    if (!error.empty()) c.errors.push_back(where + error);
    c.client.push_back(l);
  } else if (l == "-- tls") {
    if (c.client.empty()) {
      c.errors.push_back(where + "-- tls before any C: line");
    } else {
      c.tls_after.push_back(c.client.size() - 1);
    }
  }
}

/// The case that starts at lines[i] (its ### line); i ends at the next case.
Case parse_case(const std::vector<std::string>& lines, std::size_t& i, const std::string& file,
                const Settings& defaults) {
  Case c;
  c.file = file;
  c.name = lines[i].substr(4);
  c.line = static_cast<int>(i) + 1;
  c.settings = defaults;
  std::vector<std::string> fresh{"mail", "rcpt", "data"};
  bool in_dialogue = false;
  for (bool first = true; i < lines.size() && (first || !starts_with(lines[i], "### "));
       ++i, first = false) {
    c.text.push_back(lines[i]);
    const std::string l = strip_indent(lines[i]);
    const std::string where = file + ":" + std::to_string(i + 1) + ": ";
    const bool blank = l.find_first_not_of(' ') == std::string::npos;
    if (!in_dialogue && !is_dialogue(l)) {
      c.head.push_back(lines[i]);
      const std::string e =
          starts_with(l, "% ") ? apply(std::string_view(l).substr(2), c.settings, fresh) : "";
      if (!e.empty()) c.errors.push_back(where + e);
    } else if (!is_dialogue(l)) {
      if (!blank) c.errors.push_back(where + "text inside a dialogue (put it before the first C:)");
      c.tail.push_back(lines[i]);
    } else {
      if (!c.tail.empty()) c.errors.push_back(where + "blank line inside a dialogue");
      c.tail.clear();
      in_dialogue = true;
      add_dialogue_line(c, l, i);
    }
  }
  return c;
}

File parse(const fs::path& path) {
  File f;
  std::ifstream in(path);
  if (!in) {
    f.errors.push_back("cannot read " + path.string());
    return f;
  }
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  const std::string file = path.filename().string();
  Settings defaults;
  std::vector<std::string> fresh_defaults{"mail", "rcpt", "data"};
  std::size_t i = 0;
  for (; i < lines.size() && !starts_with(lines[i], "### "); ++i) {
    f.preamble.push_back(lines[i]);
    const std::string l = strip_indent(lines[i]);
    if (!starts_with(l, "% ")) continue;
    const std::string e = apply(std::string_view(l).substr(2), defaults, fresh_defaults);
    if (!e.empty()) f.errors.push_back((file + ":" + std::to_string(i + 1) + ": ").append(e));
  }
  while (i < lines.size()) f.cases.push_back(parse_case(lines, i, file, defaults));
  return f;
}

/// The case's lines as the code says they should be: its head and C: lines as written,
/// the recording of a line-by-line run after each of them.
std::vector<std::string> render(const Case& c, const Recording& rec) {
  std::vector<std::string> out = c.head;
  auto put = [&](const std::vector<std::string>& records) {
    for (const auto& r : records) out.push_back(std::string(kIndent) + r);
  };
  put(rec.per_read[0]);
  for (std::size_t k = 0; k < c.client.size(); ++k) {
    out.push_back(std::string(kIndent) + c.client[k]);
    put(rec.per_read[k + 1]);
  }
  out.insert(out.end(), c.tail.begin(), c.tail.end());
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

/// The client's octets in parts that end where a `-- tls` line stands (a new read starts
/// after the handshake); within a part, the reads are the part cut at the given points.
std::vector<std::string> parts_of(const Case& c) {
  std::vector<std::string> parts(1);
  for (std::size_t k = 0; k < c.bytes.size(); ++k) {
    parts.back() += c.bytes[k];
    if (std::find(c.tls_after.begin(), c.tls_after.end(), k) != c.tls_after.end()) {
      parts.emplace_back();
    }
  }
  if (parts.back().empty() && parts.size() > 1) parts.pop_back();
  return parts;
}

template <typename CutSizes>
std::vector<std::string_view> cut(const std::vector<std::string>& parts, CutSizes next_size) {
  std::vector<std::string_view> reads;
  for (const auto& p : parts) {
    for (std::size_t pos = 0; pos < p.size();) {
      const std::size_t n = std::min(next_size(p.size() - pos), p.size() - pos);
      reads.push_back(std::string_view(p).substr(pos, n));
      pos += n;
    }
  }
  return reads;
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ULL;
  for (char ch : s) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
  return h;
}

/// Runs one case every way; returns its lines as the code renders them.
std::vector<std::string> check_case(const Case& c, bool regenerating) {
  SCOPED_TRACE("case \"" + c.name + "\" (line " + std::to_string(c.line) + ")");
  for (const auto& e : c.errors) ADD_FAILURE() << e;
  if (!c.errors.empty()) return c.text;
  const auto& cfg = c.settings.config;
  const auto& tr = c.settings.transport;

  std::vector<std::string_view> lines(c.bytes.begin(), c.bytes.end());
  const Recording by_line = drive(cfg, tr, lines);
  std::vector<std::string> rendered = render(c, by_line);
  if (!regenerating) {
    EXPECT_EQ(joined(c.text), joined(rendered))
        << "the dialogue differs from what the code does (TRUEFROM_REGENERATE=1 rewrites it)";
  }

  const auto want = by_line.flat();
  const auto parts = parts_of(c);
  auto same = [&](const std::vector<std::string_view>& reads, const std::string& how) {
    const auto got = drive(cfg, tr, reads).flat();
    EXPECT_EQ(joined(want), joined(got)) << how << " differs from line by line";
    return want == got;
  };
  same(cut(parts, [](std::size_t left) { return left; }), "whole");
  same(cut(parts, [](std::size_t) { return std::size_t{1}; }), "byte by byte");
  std::seed_seq seq{test_seed(), static_cast<std::uint32_t>(fnv1a(c.name)),
                    static_cast<std::uint32_t>(fnv1a(c.name) >> 32)};
  std::mt19937 rng(seq);
  for (int round = 0; round < kRandomRounds; ++round) {
    // short reads mostly, now and then one that takes the rest of the part; the first
    // split that differs is reported, not the next ones
    const bool ok = same(cut(parts,
                             [&](std::size_t left) {
                               return std::uniform_int_distribution<int>(0, 9)(rng) == 0
                                          ? left
                                          : std::uniform_int_distribution<std::size_t>(1, 17)(rng);
                             }),
                         "random split, round " + std::to_string(round) +
                             " (TRUEFROM_TEST_SEED=" + std::to_string(test_seed()) + ")");
    if (!ok) break;
  }
  return rendered;
}

std::vector<std::string> golden_files() {
  std::vector<std::string> out;
  if (fs::is_directory(kDir)) {
    for (const auto& e : fs::directory_iterator(kDir)) {
      if (e.path().extension() == ".md") out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

class SessionGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SessionGolden, Dialogues) {
  const fs::path path = kDir / GetParam();
  const File f = parse(path);
  for (const auto& e : f.errors) ADD_FAILURE() << e;
  ASSERT_FALSE(f.cases.empty()) << path << " has no case (### name)";
  const char* regen = std::getenv("TRUEFROM_REGENERATE");  // NOLINT(concurrency-mt-unsafe)
  const bool regenerating = regen != nullptr && std::string_view(regen) == "1";
  std::vector<std::string> all = f.preamble;
  for (const Case& c : f.cases) {
    const auto lines = check_case(c, regenerating);
    all.insert(all.end(), lines.begin(), lines.end());
  }
  if (regenerating && f.errors.empty()) {
    std::ifstream in(path);
    std::stringstream old;
    old << in.rdbuf();
    if (old.str() != joined(all)) {
      std::ofstream(path) << joined(all);
      std::cout << "rewrote " << path.string() << "\n";
    }
  }
}

TEST(SessionGoldenFiles, Exist) { EXPECT_GE(golden_files().size(), 1U) << kDir; }

INSTANTIATE_TEST_SUITE_P(Files, SessionGolden, ::testing::ValuesIn(golden_files()),
                         [](const auto& info) {
                           std::string n = fs::path(info.param).stem().string();
                           std::replace_if(
                               n.begin(), n.end(), [](char ch) { return !std::isalnum(ch); }, '_');
                           return n;
                         });

}  // namespace
}  // namespace truefrom::smtp::golden

#include "submission/core/header_text.hpp"

#include <array>
#include <cstdint>

#include "submission/core/address.hpp"

namespace truefrom::smtp {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes one UTF-8 sequence at `i`; returns its length, 0 when invalid.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len = 0;
  std::uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1Fu, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0Fu, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Copies UTF-8, replacing each invalid byte with U+FFFD.
void append_sanitized_utf8(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
}

enum class Charset { kUtf8, kLatin1, kSingleByte, kDoubleByte, kIso2022, kRefused };

Charset classify(std::string_view name) {
  std::string n = ascii_lower(name.substr(0, name.find('*')));  // RFC 2231 "utf-8*en"
  if (n == "utf-8" || n == "utf8" || n == "us-ascii" || n == "ascii") return Charset::kUtf8;
  if (n == "iso-8859-1" || n == "latin1" || n == "iso8859-1" || n == "windows-1252" ||
      n == "cp1252") {
    return Charset::kLatin1;
  }
  if (n.starts_with("utf-7") || n.starts_with("utf-16") || n.starts_with("utf-32") ||
      n.starts_with("ucs-") || n == "unicode" || n == "utf7" || n == "utf16") {
    return Charset::kRefused;
  }
  if (n.starts_with("iso-2022")) return Charset::kIso2022;
  static constexpr std::array<std::string_view, 18> kDoubleByte = {
      "shift_jis", "shift-jis",  "sjis",   "cp932",          "windows-31j", "ms932",
      "big5",      "big5-hkscs", "gbk",    "gb2312",         "gb18030",     "cp936",
      "cp950",     "euc-jp",     "euc-kr", "ks_c_5601-1987", "cp949",       "euc-cn"};
  for (auto d : kDoubleByte) {
    if (n == d) return Charset::kDoubleByte;
  }
  return Charset::kSingleByte;
}

// Converts decoded bytes in `charset` to UTF-8 display text.
void append_as_utf8(std::string& out, std::string_view bytes, Charset cs) {
  switch (cs) {
    case Charset::kUtf8:
      append_sanitized_utf8(out, bytes);
      return;
    case Charset::kLatin1:
      for (char c : bytes) append_utf8(out, static_cast<unsigned char>(c));
      return;
    case Charset::kSingleByte:
      for (char c : bytes) {
        if (static_cast<unsigned char>(c) < 0x80) {
          out += c;
        } else {
          out += kReplacement;
        }
      }
      return;
    case Charset::kDoubleByte:
      // A byte >= 0x81 leads a two-byte character whose second byte may look like ASCII
      // (Shift_JIS, Big5 and GBK trail bytes include 0x40 '@'): consume both.
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (static_cast<unsigned char>(bytes[i]) < 0x80) {
          out += bytes[i];
        } else {
          out += kReplacement;
          if (static_cast<unsigned char>(bytes[i]) >= 0x81) ++i;
        }
      }
      return;
    case Charset::kIso2022: {
      // ESC ( B / ESC ( J: ASCII; ESC $ @, ESC $ B, ESC $ ( X: two 7-bit bytes per character.
      bool two_byte = false;
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        const char c = bytes[i];
        if (c == '\x1b') {
          if (i + 2 < bytes.size() && bytes[i + 1] == '(') {
            two_byte = false;
            i += 2;
          } else if (i + 2 < bytes.size() && bytes[i + 1] == '$') {
            two_byte = true;
            i += bytes[i + 2] == '(' || bytes[i + 2] == ')' ? 3u : 2u;
          }
          continue;
        }
        if (!two_byte) {
          if (static_cast<unsigned char>(c) < 0x80) {
            out += c;
          } else {
            out += kReplacement;
          }
          continue;
        }
        if (i + 1 >= bytes.size()) break;
        const int code =
            (static_cast<unsigned char>(c) << 8) | static_cast<unsigned char>(bytes[i + 1]);
        ++i;
        if (code == 0x2177) {
          append_utf8(out, 0xFF20);  // JIS X 0208 full-width commercial at
        } else if (code == 0x2125) {
          append_utf8(out, 0xFF0E);  // full-width full stop
        } else {
          out += kReplacement;
        }
      }
      return;
    }
    case Charset::kRefused:
      return;
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::optional<std::string> decode_q(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      out += ' ';
    } else if (s[i] == '=') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::string> decode_b(std::string_view s) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = base64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// RFC 2047 2: token = 1*<any CHAR except SPACE, CTLs, and especials>
bool is_token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 32 && u < 127 &&
         std::string_view("()<>@,;:\"/[]?.=").find(c) == std::string_view::npos;
}

struct EncodedWord {
  std::size_t length = 0;  // octets of "=?...?=" in the input
  std::string charset;
  std::string bytes;  // decoded, still in `charset`
};

// Parses an encoded-word at the start of `s`.
std::optional<EncodedWord> parse_encoded_word(std::string_view s) {
  if (!s.starts_with("=?")) return std::nullopt;
  std::size_t i = 2;
  while (i < s.size() && (is_token_char(s[i]) || s[i] == '*')) ++i;
  if (i == 2 || i + 3 > s.size() || s[i] != '?' || s[i + 2] != '?') return std::nullopt;
  EncodedWord w;
  w.charset = std::string(s.substr(2, i - 2));
  const char enc = s[i + 1];
  const std::size_t text_start = i + 3;
  const std::size_t end = s.find("?=", text_start);
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view text = s.substr(text_start, end - text_start);
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '?') return std::nullopt;
  }
  std::optional<std::string> bytes;
  if (enc == 'q' || enc == 'Q') {
    bytes = decode_q(text);
  } else if (enc == 'b' || enc == 'B') {
    bytes = decode_b(text);
  }
  if (!bytes) return std::nullopt;
  w.bytes = std::move(*bytes);
  w.length = end + 2;
  return w;
}

}  // namespace

bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_sequence(text, i, cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::optional<std::string> decode_encoded_words(std::string_view text, std::string* error) {
  std::string out;
  std::size_t i = 0;
  std::size_t literal_start = 0;
  bool after_encoded_word = false;
  while (i < text.size()) {
    const std::size_t at = text.find("=?", i);
    if (at == std::string_view::npos) break;
    auto w = parse_encoded_word(text.substr(at));
    if (!w) {
      i = at + 2;
      continue;
    }
    const Charset cs = classify(w->charset);
    if (cs == Charset::kRefused) {
      if (error) {
        *error = "an encoded-word uses charset " + w->charset +
                 ", which truefrom does not decode (use UTF-8)";
      }
      return std::nullopt;
    }
    const std::string_view between = text.substr(literal_start, at - literal_start);
    const bool only_space = between.find_first_not_of(" \t") == std::string_view::npos;
    if (!(after_encoded_word && only_space)) append_sanitized_utf8(out, between);
    append_as_utf8(out, w->bytes, cs);
    i = at + w->length;
    literal_start = i;
    after_encoded_word = true;
  }
  append_sanitized_utf8(out, text.substr(literal_start));
  return out;
}

namespace {

// Maps look-alike forms of ASCII to ASCII: full-width forms U+FF01..U+FF5E, small and
// ideographic forms of "@" and ".". Other characters are kept.
std::string fold_lookalikes(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    std::size_t n = utf8_sequence(text, i, cp);
    if (n == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (cp >= 0xFF01 && cp <= 0xFF5E) {
      out += static_cast<char>(cp - 0xFEE0);
    } else if (cp == 0xFE6B) {
      out += '@';
    } else if (cp == 0x3002 || cp == 0xFF61 || cp == 0xFE52 || cp == 0x2024) {
      out += '.';
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

bool is_local_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 32 || u == 127) return false;
  return std::string_view("<>()[]\"',;:@\\").find(c) == std::string_view::npos;
}

bool is_domain_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || u >= 0x80;
}

}  // namespace

std::vector<std::string> address_like_strings(std::string_view text) {
  const std::string folded = fold_lookalikes(text);
  std::vector<std::string> out;
  std::size_t at = folded.find('@');
  while (at != std::string::npos) {
    std::size_t start = at;
    while (start > 0 && is_local_char(folded[start - 1])) --start;
    std::size_t end = at + 1;
    while (end < folded.size() && is_domain_char(folded[end])) ++end;
    std::string_view domain = std::string_view(folded).substr(at + 1, end - at - 1);
    while (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
    while (!domain.empty() && domain.front() == '.') domain.remove_prefix(1);
    const std::size_t dot = domain.rfind('.');
    if (start < at && dot != std::string_view::npos && dot > 0 && domain.size() - dot > 2) {
      out.push_back(ascii_lower(std::string_view(folded).substr(start, at - start)) + "@" +
                    ascii_lower(domain));
    }
    at = folded.find('@', at + 1);
  }
  return out;
}

}  // namespace truefrom::smtp

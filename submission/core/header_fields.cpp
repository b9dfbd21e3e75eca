#include "submission/core/header_fields.hpp"

namespace truefrom::smtp {
namespace {

bool fail(std::string* error, std::string why) {
  if (error) *error = std::move(why);
  return false;
}

// RFC 5322 3.6.8: ftext = %d33-57 / %d59-126 (printable US-ASCII except ":").
bool is_ftext(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 33 && u <= 126 && c != ':';
}

// A short, printable excerpt of a line for error messages.
std::string excerpt(std::string_view line) {
  std::string out;
  for (char c : line.substr(0, 40)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 32 && u < 127) ? c : '?';
  }
  if (line.size() > 40) out += "...";
  return out;
}

}  // namespace

bool field_name_is(std::string_view name, std::string_view want) {
  if (name.size() != want.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char a = name[i];
    char b = want[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a + 32);
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b + 32);
    if (a != b) return false;
  }
  return true;
}

std::optional<HeaderSection> parse_header_section(std::string_view message, std::string* error) {
  HeaderSection out;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < message.size()) {
    const std::size_t eol = message.find("\r\n", pos);
    const std::size_t line_end = eol == std::string_view::npos ? message.size() : eol;
    const std::size_t next = eol == std::string_view::npos ? message.size() : eol + 2;
    const std::string_view line = message.substr(pos, line_end - pos);
    ++line_no;
    if (line.find('\0') != std::string_view::npos) {
      fail(error, "line " + std::to_string(line_no) + " of the header section contains a NUL byte");
      return std::nullopt;
    }
    if (line.empty()) {  // RFC 5322 2.1: an empty line ends the header section
      out.end = pos;
      return out;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      // RFC 5322 2.2.3 folding: a continuation of the previous field.
      if (out.fields.empty()) {
        fail(error, "the message starts with a folded (indented) line, not a header field");
        return std::nullopt;
      }
      out.fields.back().value += line;
      out.fields.back().raw_end = line_end;
      pos = next;
      continue;
    }
    std::size_t i = 0;
    while (i < line.size() && is_ftext(line[i])) ++i;
    const std::size_t name_end = i;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;  // RFC 5322 4.5
    if (name_end == 0 || i >= line.size() || line[i] != ':') {
      fail(error, "line " + std::to_string(line_no) +
                      " of the header section is not a header field (\"" + excerpt(line) +
                      "\"); an empty line must separate the headers from the body");
      return std::nullopt;
    }
    out.fields.push_back(HeaderField{std::string(line.substr(0, name_end)),
                                     std::string(line.substr(i + 1)), line_no, pos, line_end});
    pos = next;
  }
  out.end = message.size();
  return out;
}

}  // namespace truefrom::smtp

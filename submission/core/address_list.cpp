#include "submission/core/address_list.hpp"

#include "submission/core/header_text.hpp"

namespace truefrom::smtp {
namespace {

constexpr int kMaxCommentDepth = 16;

enum class Tok { kAtom, kQuoted, kLiteral, kSpecial, kEnd };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // atom text, quoted-string content (unescaped), literal with brackets
  char special = 0;  // for kSpecial: one of < > @ , ; : .
  bool space_before = false;
  std::string comments;  // text of the comments just before this token
};

// RFC 5322 3.2.3 atext, plus UTF-8 (RFC 6532 3.2: atext =/ UTF8-non-ascii).
bool is_atext(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 32 && c != '\t') || u == 127;
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::kAtom:
      return "\"" + t.text + "\"";
    case Tok::kQuoted:
      return "a quoted string";
    case Tok::kLiteral:
      return "a domain literal";
    case Tok::kSpecial:
      return std::string("\"") + t.special + "\"";
    case Tok::kEnd:
      return "the end of the field";
  }
  return "?";
}

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  bool run(std::vector<Token>& out, std::string& error) {
    Token pending;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == ' ' || c == '\t') {
        pending.space_before = true;
        ++i_;
      } else if (is_control(c)) {
        error = "control character 0x" + hex(c);
        return false;
      } else if (c == '(') {
        if (!comment(pending.comments, error)) return false;
        pending.space_before = true;
      } else if (c == '"') {
        pending.kind = Tok::kQuoted;
        if (!quoted(pending.text, error)) return false;
        push(out, pending);
      } else if (c == '[') {
        pending.kind = Tok::kLiteral;
        if (!literal(pending.text, error)) return false;
        push(out, pending);
      } else if (std::string_view("<>@,;:.").find(c) != std::string_view::npos) {
        pending.kind = Tok::kSpecial;
        pending.special = c;
        ++i_;
        push(out, pending);
      } else if (c == ')' || c == ']' || c == '\\') {
        error = std::string("unexpected \"") + c + "\"";
        return false;
      } else {
        const std::size_t start = i_;
        while (i_ < s_.size() && is_atext(s_[i_])) ++i_;
        pending.kind = Tok::kAtom;
        pending.text = std::string(s_.substr(start, i_ - start));
        push(out, pending);
      }
    }
    pending.kind = Tok::kEnd;
    push(out, pending);
    return true;
  }

 private:
  static std::string hex(char c) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const auto u = static_cast<unsigned char>(c);
    return {kHex[u >> 4], kHex[u & 15]};
  }

  static void push(std::vector<Token>& out, Token& t) {
    out.push_back(std::move(t));
    t = Token{};
  }

  // RFC 5322 3.2.4 quoted-string, with quoted-pair (3.2.1). i_ is at the opening quote.
  bool quoted(std::string& text, std::string& error) {
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c == '\\') {
        if (i_ + 1 >= s_.size()) break;
        if (is_control(s_[i_ + 1])) {
          error = "control character 0x" + hex(s_[i_ + 1]) + " in a quoted string";
          return false;
        }
        text += s_[i_ + 1];
        i_ += 2;
        continue;
      }
      if (is_control(c)) {
        error = "control character 0x" + hex(c) + " in a quoted string";
        return false;
      }
      text += c;
      ++i_;
    }
    error = "unterminated quoted string";
    return false;
  }

  // RFC 5322 3.2.2 comment, nested. i_ is at the opening parenthesis.
  bool comment(std::string& text, std::string& error) {
    int depth = 0;
    std::string body;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '(') {
        if (++depth > kMaxCommentDepth) {
          error = "comments nested too deeply";
          return false;
        }
        if (depth > 1) body += c;
        ++i_;
      } else if (c == ')') {
        ++i_;
        if (--depth == 0) {
          if (!text.empty()) text += ' ';
          text += body;
          return true;
        }
        body += c;
      } else if (c == '\\') {
        if (i_ + 1 >= s_.size()) break;
        if (is_control(s_[i_ + 1])) {
          error = "control character 0x" + hex(s_[i_ + 1]) + " in a comment";
          return false;
        }
        body += s_[i_ + 1];
        i_ += 2;
      } else if (is_control(c)) {
        error = "control character 0x" + hex(c) + " in a comment";
        return false;
      } else {
        body += c;
        ++i_;
      }
    }
    error = "unterminated comment (missing \")\")";
    return false;
  }

  // RFC 5322 3.4.1 domain-literal: "[" *dtext "]", dtext printable except [ ] \ .
  bool literal(std::string& text, std::string& error) {
    const std::size_t start = i_++;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == ']') {
        ++i_;
        text = std::string(s_.substr(start, i_ - start));
        return true;
      }
      if (c == '[' || c == '\\' || is_control(c)) {
        error = "invalid character in a domain literal";
        return false;
      }
      ++i_;
    }
    error = "unterminated domain literal (missing \"]\")";
    return false;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  bool address_list(AddressList& out, std::string& error) {
    for (;;) {
      while (is_special(',')) ++p_;  // RFC 5322 4.4 obs-addr-list: empty elements
      if (peek().kind == Tok::kEnd) break;
      if (!address(out, error)) return false;
      if (peek().kind == Tok::kEnd) break;
      if (!is_special(',')) {
        error = "expected \",\" between addresses, found " + describe(peek());
        return false;
      }
    }
    if (out.mailboxes.empty() && out.groups.empty()) {
      error = "no address";
      return false;
    }
    return true;
  }

 private:
  const Token& peek() const { return t_[p_]; }
  bool is_special(char c) const { return peek().kind == Tok::kSpecial && peek().special == c; }
  bool is_word() const { return peek().kind == Tok::kAtom || peek().kind == Tok::kQuoted; }

  // Comments of the tokens in [from, to], decoded.
  bool comments_between(std::size_t from, std::size_t to, std::string& out,
                        std::string& error) const {
    std::string raw;
    for (std::size_t k = from; k <= to && k < t_.size(); ++k) {
      if (t_[k].comments.empty()) continue;
      if (!raw.empty()) raw += ' ';
      raw += t_[k].comments;
    }
    auto decoded = decode_encoded_words(raw, &error);
    if (!decoded) return false;
    out = std::move(*decoded);
    return true;
  }

  // address = mailbox / group
  bool address(AddressList& out, std::string& error) {
    const std::size_t begin = p_;
    std::vector<std::size_t> words;  // phrase: word *(word / "." / CFWS)
    while (is_word() || (!words.empty() && is_special('.'))) words.push_back(p_++);
    if (is_special(':')) {
      if (words.empty()) {
        error = "a group has no name";
        return false;
      }
      std::string name;
      if (!phrase(words, name, error)) return false;
      ++p_;
      return group(name, out, error);
    }
    HeaderMailbox mb;
    if (!mailbox_after_phrase(words, mb, error)) return false;
    if (!comments_between(begin, p_, mb.comments, error)) return false;
    out.mailboxes.push_back(std::move(mb));
    return true;
  }

  // group = display-name ":" [group-list] ";" [CFWS]; the name and ':' are consumed.
  bool group(const std::string& name, AddressList& out, std::string& error) {
    out.groups.push_back(name);
    for (;;) {
      while (is_special(',')) ++p_;
      if (is_special(';')) {
        ++p_;
        return true;
      }
      if (peek().kind == Tok::kEnd) {
        error = "group \"" + name + "\" is not closed with \";\"";
        return false;
      }
      const std::size_t begin = p_;
      std::vector<std::size_t> words;
      while (is_word() || (!words.empty() && is_special('.'))) words.push_back(p_++);
      if (is_special(':')) {
        error = "a group inside group \"" + name + "\"";
        return false;
      }
      HeaderMailbox mb;
      if (!mailbox_after_phrase(words, mb, error)) return false;
      if (!comments_between(begin, p_, mb.comments, error)) return false;
      mb.group = name;
      out.mailboxes.push_back(std::move(mb));
      if (!is_special(',') && !is_special(';')) {
        error = "expected \",\" or \";\" in group \"" + name + "\", found " + describe(peek());
        return false;
      }
    }
  }

  // The rest of a mailbox once its leading words are read: "<" for name-addr, "@" when the
  // words were the local part of an addr-spec.
  bool mailbox_after_phrase(const std::vector<std::size_t>& words, HeaderMailbox& mb,
                            std::string& error) {
    if (is_special('<')) {
      if (!words.empty() && !phrase(words, mb.display_name, error)) return false;
      ++p_;
      return angle_addr(mb.address, error);
    }
    if (is_special('@')) {
      if (words.empty()) {
        error = "an address has an empty local part";
        return false;
      }
      if (!local_part(words, mb.address.local, error)) return false;
      ++p_;
      return domain(mb.address.domain, error);
    }
    if (words.empty()) {
      error = "expected an address, found " + describe(peek());
    } else {
      std::string text;
      phrase(words, text, error);
      error =
          "\"" + text + "\" is not an address (no @domain, or a display name without <address>)";
    }
    return false;
  }

  // RFC 5322 3.2.5 phrase, joined by single spaces, encoded-words decoded.
  bool phrase(const std::vector<std::size_t>& words, std::string& out, std::string& error) {
    std::string raw;
    for (std::size_t k = 0; k < words.size(); ++k) {
      const Token& w = t_[words[k]];
      if (k > 0 &&
          (w.space_before || (w.kind == Tok::kQuoted && t_[words[k - 1]].kind == Tok::kQuoted))) {
        raw += ' ';
      }
      raw += w.kind == Tok::kSpecial ? std::string(1, w.special) : w.text;
    }
    auto decoded = decode_encoded_words(raw, &error);
    if (!decoded) return false;
    out = std::move(*decoded);
    return true;
  }

  // local-part = dot-atom / quoted-string / obs-local-part (word *("." word))
  bool local_part(const std::vector<std::size_t>& words, std::string& out, std::string& error) {
    bool want_word = true;
    for (std::size_t k : words) {
      const Token& w = t_[k];
      const bool dot = w.kind == Tok::kSpecial;
      if (dot == want_word) {
        error = want_word ? "a local part has an empty element between dots"
                          : "a display name must be followed by an address in <>, found "
                            "words before \"@\"";
        return false;
      }
      out += dot ? "." : w.text;
      want_word = dot;
    }
    if (want_word) {
      error = "a local part ends with \".\"";
      return false;
    }
    return true;
  }

  // domain = dot-atom / domain-literal / obs-domain (atom *("." atom))
  bool domain(std::string& out, std::string& error) {
    if (peek().kind == Tok::kLiteral) {
      out = t_[p_++].text;
      return true;
    }
    for (;;) {
      if (peek().kind != Tok::kAtom) {
        error = out.empty() ? "expected a domain after \"@\", found " + describe(peek())
                            : "a domain has an empty label";
        return false;
      }
      out += t_[p_++].text;
      if (!is_special('.')) return true;
      out += '.';
      ++p_;
    }
  }

  // angle-addr = "<" [obs-route] addr-spec ">"; the "<" is consumed.
  bool angle_addr(Mailbox& out, std::string& error) {
    if (is_special('>')) {
      error = "an empty address <>";
      return false;
    }
    if (is_special('@') || is_special(',')) {
      // RFC 5322 4.4 obs-route = obs-domain-list ":" ; the route is dropped.
      for (;;) {
        while (is_special(',')) ++p_;
        if (!is_special('@')) break;
        ++p_;
        std::string ignored;
        if (!domain(ignored, error)) return false;
      }
      if (!is_special(':')) {
        error = "a malformed route in <...>";
        return false;
      }
      ++p_;
    }
    std::vector<std::size_t> words;
    while (is_word() || is_special('.')) words.push_back(p_++);
    if (!is_special('@')) {
      error = words.empty() ? "expected an address in <...>, found " + describe(peek())
                            : "an address in <...> has no @domain";
      return false;
    }
    if (!local_part(words, out.local, error)) return false;
    ++p_;
    if (!domain(out.domain, error)) return false;
    if (!is_special('>')) {
      error = "expected \">\" after the address, found " + describe(peek());
      return false;
    }
    ++p_;
    return true;
  }

  std::vector<Token> t_;
  std::size_t p_ = 0;
};

}  // namespace

std::optional<AddressList> parse_address_list(std::string_view value, std::string* error) {
  std::string why;
  if (!valid_utf8(value)) {
    if (error) *error = "bytes that are not UTF-8 (encode non-ASCII text as RFC 2047 or UTF-8)";
    return std::nullopt;
  }
  std::vector<Token> tokens;
  AddressList out;
  if (!Lexer(value).run(tokens, why) || !Parser(std::move(tokens)).address_list(out, why)) {
    if (error) *error = std::move(why);
    return std::nullopt;
  }
  return out;
}

}  // namespace truefrom::smtp

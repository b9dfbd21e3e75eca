#include "submission/core/data_receiver.hpp"

#include <algorithm>
#include <cstring>

namespace truefrom::smtp {
namespace {
// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets including the CRLF.
constexpr std::size_t kMaxLineWithoutCrlf = 998;
}  // namespace

void DataReceiver::reset() {
  state_ = State::kLineStart;
  defect_ = Defect::kNone;
  size_ = 0;
  line_length_ = 0;
}

void DataReceiver::mark(Defect d) {
  if (defect_ == Defect::kNone) defect_ = d;
}

void DataReceiver::emit(char c, std::string& out) {
  ++size_;
  if (size_ > max_size_) mark(Defect::kTooBig);
  if (defect_ == Defect::kNone) out += c;
}

// Appends in[i, j), a run of ordinary characters (no CR or LF) inside a line, at once: what
// the loop below does octet by octet, including where a defect stops the output.
void DataReceiver::run(std::string_view in, std::size_t i, std::size_t j, std::string& out) {
  const std::size_t n = j - i;
  std::size_t allowed = defect_ == Defect::kNone ? n : 0;
  // Octet k of the run makes the line too long when line_length_ + k + 1 > kMax, and the
  // message too big when size_ + k + 1 > max_size_; that octet and the rest are not kept.
  const std::size_t too_long =
      kMaxLineWithoutCrlf > line_length_ ? kMaxLineWithoutCrlf - line_length_ : 0;
  const std::size_t too_big = max_size_ > size_ ? max_size_ - size_ : 0;
  // The first defect is the one recorded; within one octet the line length is checked first.
  if (too_long < n && too_long <= too_big) mark(Defect::kLineTooLong);
  if (too_big < n) mark(Defect::kTooBig);
  if (too_long < n) mark(Defect::kLineTooLong);
  allowed = std::min({allowed, too_long, too_big});
  out.append(in.data() + i, allowed);
  line_length_ += n;
  size_ += n;
}

// From in[i], inside a line or at the start of one that is not dot-stuffed: takes every
// complete line that needs nothing of the loop in consume() (ends with CRLF, no bare CR or
// LF, at most 998 octets, within the size limit, the next line not starting with a dot) and
// appends them at once. Returns where it stopped (i when no line qualified); the state is
// then a line start.
std::size_t DataReceiver::whole_lines(std::string_view in, std::size_t i, std::string& out) {
  const char* p = in.data();
  const std::size_t n = in.size();
  std::size_t pos = i;
  std::size_t line = line_length_;
  std::size_t taken = i;  // the end of the last line taken
  while (pos < n) {
    const void* lf = std::memchr(p + pos, '\n', n - pos);
    if (!lf) break;  // the line goes on past the input
    const std::size_t k = static_cast<std::size_t>(static_cast<const char*>(lf) - p);
    // CRLF and no other CR in the line (a bare one is the loop's to mark).
    if (k == pos || p[k - 1] != '\r' || std::memchr(p + pos, '\r', k - 1 - pos)) break;
    line += k - 1 - pos;
    if (line > kMaxLineWithoutCrlf || size_ + (k + 1 - i) > max_size_) break;
    taken = pos = k + 1;
    line = 0;
    if (pos < n && p[pos] == '.') break;
  }
  if (taken == i) return i;
  out.append(p + i, taken - i);
  size_ += taken - i;
  line_length_ = 0;
  state_ = State::kLineStart;
  return taken;
}

DataReceiver::Progress DataReceiver::consume(std::string_view in, std::string& out) {
  std::size_t i = 0;
  // The fast paths below stop before the next NUL octet (almost never there: one memchr per
  // read), which the octet loop then marks.
  std::size_t nul = 0;
  auto find_nul = [&] {
    const void* z = std::memchr(in.data() + i, '\0', in.size() - i);
    nul = z ? static_cast<std::size_t>(static_cast<const char*>(z) - in.data()) : in.size();
  };
  find_nul();
  while (i < in.size()) {
    if (i > nul) find_nul();
    const bool ordinary = state_ == State::kInLine || (state_ == State::kLineStart && in[i] != '.');
    if (ordinary && defect_ == Defect::kNone) {
      const std::size_t j = whole_lines(in.substr(0, nul), i, out);
      if (j > i) {
        i = j;
        continue;
      }
    }
    if (ordinary) {
      const char* p = in.data() + i;
      const std::size_t left = nul - i;
      const void* cr = std::memchr(p, '\r', left);
      const std::size_t to_cr =
          cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - p) : left;
      const void* lf = std::memchr(p, '\n', to_cr);
      const std::size_t n = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - p) : to_cr;
      if (n > 0) {
        run(in, i, i + n, out);
        i += n;
        state_ = State::kInLine;
        continue;
      }
    }
    const char c = in[i++];
    switch (state_) {
      case State::kLineStart:
        if (c == '.') {
          state_ = State::kDot;
          continue;
        }
        break;  // an ordinary first character: handled as in a line below
      case State::kDot:
        if (c == '\r') {
          state_ = State::kDotCr;
          continue;
        }
        // RFC 5321 4.5.2: the leading dot of a stuffed line is dropped.
        ++line_length_;
        state_ = State::kInLine;
        break;
      case State::kDotCr:
        if (c == '\n') {
          state_ = State::kLineStart;
          return {i, true};
        }
        // ".\r" then something else: the dot was stuffing, the CR is bare.
        ++line_length_;
        mark(Defect::kBareNewline);
        emit('\r', out);
        state_ = State::kInLine;
        break;
      case State::kCr:
        if (c == '\n') {
          emit('\r', out);
          emit('\n', out);
          line_length_ = 0;
          state_ = State::kLineStart;
          continue;
        }
        mark(Defect::kBareNewline);
        emit('\r', out);
        state_ = State::kInLine;
        break;
      case State::kInLine:
        break;
    }
    // c is an ordinary character of the current line.
    if (c == '\r') {
      state_ = State::kCr;
      continue;
    }
    if (c == '\n') {
      // A bare LF is content, never a line end: the line goes on.
      mark(Defect::kBareNewline);
    } else if (c == '\0') {
      mark(Defect::kNul);
    }
    if (++line_length_ > kMaxLineWithoutCrlf) mark(Defect::kLineTooLong);
    emit(c, out);
    state_ = State::kInLine;
  }
  return {i, false};
}

}  // namespace truefrom::smtp

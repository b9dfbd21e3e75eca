#include "submission/core/data_receiver.hpp"

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

DataReceiver::Progress DataReceiver::consume(std::string_view in, std::string& out) {
  std::size_t i = 0;
  while (i < in.size()) {
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
    }
    if (++line_length_ > kMaxLineWithoutCrlf) mark(Defect::kLineTooLong);
    emit(c, out);
    state_ = State::kInLine;
  }
  return {i, false};
}

}  // namespace truefrom::smtp

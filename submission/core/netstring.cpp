#include "submission/core/netstring.hpp"

namespace truefrom::smtp {

NetstringReader::Result NetstringReader::next(std::string& out, std::string& error) {
  std::size_t len = 0;
  std::size_t i = 0;
  for (; i < buffer_.size() && buffer_[i] != ':'; ++i) {
    const char c = buffer_[i];
    // No leading zeros except "0" itself; digits only; bounded.
    if (c < '0' || c > '9' || (i == 1 && buffer_[0] == '0')) {
      error = "malformed netstring length";
      return Result::kError;
    }
    len = len * 10 + static_cast<std::size_t>(c - '0');
    if (len > max_) {
      error = "netstring longer than " + std::to_string(max_) + " octets";
      return Result::kError;
    }
  }
  if (i == buffer_.size()) return Result::kMore;
  if (i == 0) {
    error = "malformed netstring length";
    return Result::kError;
  }
  const std::size_t start = i + 1;
  if (buffer_.size() < start + len + 1) return Result::kMore;
  if (buffer_[start + len] != ',') {
    error = "netstring not terminated by ','";
    return Result::kError;
  }
  out.assign(buffer_, start, len);
  buffer_.erase(0, start + len + 1);
  return Result::kDone;
}

std::string netstring(std::string_view data) {
  return std::to_string(data.size()) + ":" + std::string(data) + ",";
}

}  // namespace truefrom::smtp

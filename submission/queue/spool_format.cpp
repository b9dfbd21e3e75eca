#include "submission/queue/spool_format.hpp"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <new>

namespace truefrom::queue {
namespace {

constexpr std::string_view kMagic = "truefrom-queue 1\n";
// A head is small: a bound keeps a corrupt file from being read as one.
constexpr std::size_t kMaxHead = 1024 * 1024;

// One "key value" (or bare "key") line of a head or state file.
struct KeyValue {
  std::string_view key, value;
  bool bare = false;  // no value at all (not even an empty one)
};

KeyValue split_line(std::string_view line) {
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos) return {line, {}, true};
  return {line.substr(0, sp), line.substr(sp + 1), false};
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

// Exactly 16 lowercase hex digits.
bool parse_hex64(std::string_view text, std::uint64_t& out) {
  if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return false;
  }
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

const char* where_dir(Where w) { return w == Where::kActive ? "active" : "hold"; }

bool valid_id(std::string_view id) {
  if (id.size() < 8 || id.size() > 32) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
}

bool clean_value(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool check_envelope(const MessageInfo& info, std::string& error) {
  if (!valid_id(info.id)) {
    error = "invalid queue id";
    return false;
  }
  for (const auto& r : info.recipients) {
    if (!clean_value(r)) {
      error = "control characters in a recipient";
      return false;
    }
  }
  if (!clean_value(info.mail_from) || !clean_value(info.user)) {
    error = "control characters in the envelope";
    return false;
  }
  return true;
}

std::string encode_head(const MessageInfo& info) {
  std::string h(kMagic);
  h += "id " + info.id + "\n";
  h += "from " + info.mail_from + "\n";
  for (const auto& r : info.recipients) h += "rcpt " + r + "\n";
  if (info.eight_bit) h += "body 8bitmime\n";
  if (info.smtputf8) h += "smtputf8\n";
  if (!info.user.empty()) h += "user " + info.user + "\n";
  h += "arrival " + std::to_string(info.arrival) + "\n";
  h += "size " + std::to_string(info.size) + "\n\n";
  return h;
}

std::optional<MessageInfo> decode_head(std::string_view file, std::size_t& data_offset,
                                       std::string& error) {
  if (file.substr(0, kMagic.size()) != kMagic) {
    error = "not a truefrom queue file (or a newer format)";
    return std::nullopt;
  }
  const auto end = file.substr(0, kMaxHead).find("\n\n");
  if (end == std::string_view::npos) {
    error = "the envelope has no end";
    return std::nullopt;
  }
  MessageInfo info;
  bool has_id = false, has_from = false, has_size = false, has_arrival = false;
  std::string_view head = file.substr(kMagic.size(), end + 1 - kMagic.size());
  while (!head.empty()) {
    const auto nl = head.find('\n');
    const std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl + 1);
    const auto [key, value, bare] = split_line(line);
    if (!clean_value(line)) {
      error = "control characters in the envelope";
      return std::nullopt;
    }
    if (key == "id" && !bare && valid_id(value) && !has_id) {
      info.id = value;
      has_id = true;
    } else if (key == "from" && !has_from) {
      info.mail_from = value;
      has_from = true;
    } else if (key == "rcpt" && !bare && !value.empty()) {
      info.recipients.emplace_back(value);
    } else if (key == "body" && value == "8bitmime") {
      info.eight_bit = true;
    } else if (key == "smtputf8" && bare) {
      info.smtputf8 = true;
    } else if (key == "user" && !bare && !value.empty()) {
      info.user = value;
    } else if (key == "arrival" && !bare && parse_number(value, info.arrival)) {
      has_arrival = true;
    } else if (key == "size" && !bare && parse_number(value, info.size)) {
      has_size = true;
    } else {
      error = "unexpected envelope line \"" + std::string(line.substr(0, 60)) + "\"";
      return std::nullopt;
    }
  }
  if (!has_id || !has_from || !has_size || !has_arrival || info.recipients.empty()) {
    error = "the envelope lacks id, from, rcpt, arrival or size";
    return std::nullopt;
  }
  data_offset = end + 2;
  if (file.size() - data_offset != info.size) {
    error = "the message is " + std::to_string(file.size() - data_offset) +
            " octets, the envelope says " + std::to_string(info.size);
    return std::nullopt;
  }
  return info;
}

// Decodes a message file's (or a segment record's) content and checks it is `id`'s.
std::optional<MessageInfo> decode_message(std::string_view content, const std::string& id,
                                          const std::string& source, std::string* data,
                                          std::string& error) {
  std::size_t offset = 0;
  std::string why;
  auto info = decode_head(content, offset, why);
  if (!info) {
    error = source + ": " + why;
    return std::nullopt;
  }
  if (info->id != id) {
    error = source + ": the envelope names another id (" + info->id + ")";
    return std::nullopt;
  }
  if (data) data->assign(content.substr(offset));
  return info;
}

std::string encode_state(const DeliveryState& s) {
  std::string t = "attempts " + std::to_string(s.attempts) + "\n";
  t += "next " + std::to_string(s.next_attempt) + "\n";
  if (!s.last_error.empty()) {
    std::string e = s.last_error;
    std::replace_if(
        e.begin(), e.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
    t += "error " + e + "\n";
  }
  for (const auto& r : s.finished) t += "finished " + r + "\n";
  return t;
}

std::optional<DeliveryState> decode_state(std::string_view text, std::string& error) {
  DeliveryState s;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      error = "truncated state";
      return std::nullopt;
    }
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    const auto [key, value, bare] = split_line(line);
    (void)bare;
    if (key == "attempts" && parse_number(value, s.attempts)) continue;
    if (key == "next" && parse_number(value, s.next_attempt)) continue;
    if (key == "error") {
      s.last_error = value;
      continue;
    }
    if (key == "finished" && !value.empty()) {
      s.finished.emplace_back(value);
      continue;
    }
    error = "unexpected state line \"" + std::string(line.substr(0, 60)) + "\"";
    return std::nullopt;
  }
  return s;
}

std::uint64_t record_checksum(const std::vector<std::string_view>& parts) {
  if (parts.size() == 1) return XXH3_64bits(parts[0].data(), parts[0].size());
  const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                       &XXH3_freeState);
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state.get());
  for (auto p : parts) XXH3_64bits_update(state.get(), p.data(), p.size());
  return XXH3_64bits_digest(state.get());
}

std::string encode_record_header(std::size_t payload_size, bool live, std::uint64_t checksum) {
  char h[kRecordHeader + 1];
  std::snprintf(h, sizeof h, "rec %c %012zu %016llx\n", live ? 'L' : 'D', payload_size,
                static_cast<unsigned long long>(checksum));
  return std::string(h, kRecordHeader);
}

std::string encode_record(std::string_view payload, bool live, bool v1) {
  if (v1) {
    char h[kRecordHeaderV1 + 1];
    std::snprintf(h, sizeof h, "rec %c %012zu\n", live ? 'L' : 'D', payload.size());
    return std::string(h, kRecordHeaderV1) + std::string(payload);
  }
  return encode_record_header(payload.size(), live, record_checksum({payload})) +
         std::string(payload);
}

std::optional<std::vector<SegmentRecord>> parse_segment(std::string_view file, std::size_t& end) {
  end = 0;
  const bool v1 = file.substr(0, kSegmentMagicV1.size()) == kSegmentMagicV1;
  if (!v1 && file.substr(0, kSegmentMagic.size()) != kSegmentMagic) return std::nullopt;
  const std::size_t header = v1 ? kRecordHeaderV1 : kRecordHeader;
  static_assert(kSegmentMagicV1.size() == kSegmentMagic.size());
  std::vector<SegmentRecord> records;
  std::size_t pos = kSegmentMagic.size();
  for (;;) {
    end = pos;
    if (file.size() - pos < header) break;
    const std::string_view h = file.substr(pos, header);
    std::uint64_t n = 0;
    if (h.substr(0, 4) != "rec " || (h[4] != 'L' && h[4] != 'D') || h[5] != ' ' ||
        h[header - 1] != '\n' || !parse_number(h.substr(6, 12), n) ||
        n > file.size() - pos - header) {
      break;
    }
    const std::string_view payload = file.substr(pos + header, n);
    if (!v1) {
      std::uint64_t sum = 0;
      if (h[18] != ' ' || !parse_hex64(h.substr(19, 16), sum) ||
          sum != record_checksum({payload})) {
        break;
      }
    }
    records.push_back({h[4] == 'L', pos, header, payload});
    pos += header + n;
  }
  return records;
}

}  // namespace truefrom::queue

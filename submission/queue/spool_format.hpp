// The spool's on-disk format, pure: message heads ("truefrom-queue 1"), delivery-state files,
// and segment files ("truefrom-segment 2", and version 1 read for recovery after an upgrade)
// with their records. Encoding and parsing only: no file, no thread, no clock. This is what
// the fuzz target (tests/fuzz/fuzz_spool.cpp) compiles, together with xxHash.
//
// A segment file starts with kSegmentMagic; then records, each a fixed-size header
// ("rec L 000000001234 0123456789abcdef\n": L live or D done, the payload's length, the
// XXH3-64 of the payload in hex) and a payload (a head and the message, exactly what a
// message file in active/ holds). The checksum tells a record that reached the disk whole
// from one torn by a crash: segments grow by zeros written ahead of their records, so the
// pages of a record that a sync did not finish read as zeros, not as the file's end.
//
// Thread-safety: functions only, none with state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace truefrom::queue {

/// The envelope and origin of a queued message (the spool file's head).
struct MessageInfo {
  std::string id;                       ///< [0-9A-Za-z] 8..32 characters
  std::string mail_from;                ///< without brackets; empty for <>
  std::vector<std::string> recipients;  ///< without brackets, as accepted
  bool eight_bit = false;               ///< BODY=8BITMIME
  bool smtputf8 = false;                ///< SMTPUTF8 (RFC 6531)
  std::string user;                     ///< the authenticated login; empty for a DSN
  std::int64_t arrival = 0;             ///< unix seconds
  std::uint64_t size = 0;               ///< octets of message data after the head
};

/// What the scheduler knows about a message beyond its file.
struct DeliveryState {
  unsigned attempts = 0;
  std::int64_t next_attempt = 0;  ///< unix seconds; 0: as soon as possible
  std::string last_error;         ///< one line; empty before the first failure
  /// Recipients that need no further attempt (delivered, or refused and reported).
  std::vector<std::string> finished;
};

/// The two directories a message file can be in.
enum class Where { kActive, kHold };
/// "active" or "hold".
const char* where_dir(Where where);

/// Checks an id as found on disk or typed by an admin.
bool valid_id(std::string_view id);
/// Whether `value` may stand in a head line (no CR, LF or NUL).
bool clean_value(std::string_view value);
/// Whether the envelope can be written as a head: a valid id, clean values; else says why.
bool check_envelope(const MessageInfo& info, std::string& error);

/// The spool file's head, followed by the message.
std::string encode_head(const MessageInfo& info);
/// Parses a head at the start of `file`; sets `data_offset` to where the message begins.
/// Refuses anything malformed, and a file whose length differs from what the head says.
std::optional<MessageInfo> decode_head(std::string_view file, std::size_t& data_offset,
                                       std::string& error);
/// decode_head() of a message file's (or a segment record's) content, which must be `id`'s;
/// `source` names it in the error. The message is copied into `*data` when given.
std::optional<MessageInfo> decode_message(std::string_view content, const std::string& id,
                                          const std::string& source, std::string* data,
                                          std::string& error);
std::string encode_state(const DeliveryState& state);
std::optional<DeliveryState> decode_state(std::string_view text, std::string& error);

inline constexpr std::string_view kSegmentMagic = "truefrom-segment 2\n";
inline constexpr std::size_t kRecordHeader = 36;
/// Version 1 (until 2026-12): 19-octet headers without a checksum. Still read (recovery
/// after an upgrade), never written.
inline constexpr std::string_view kSegmentMagicV1 = "truefrom-segment 1\n";
inline constexpr std::size_t kRecordHeaderV1 = 19;
/// Where in a record header its L/D mark is (the done mark overwrites that one octet).
inline constexpr std::size_t kRecordMarkOffset = 4;
/// The checksum of a payload given in parts.
std::uint64_t record_checksum(const std::vector<std::string_view>& parts);
std::string encode_record_header(std::size_t payload_size, bool live, std::uint64_t checksum);
/// Header and payload (for tests and the fuzz target; `v1`: the version 1 form).
std::string encode_record(std::string_view payload, bool live, bool v1 = false);
struct SegmentRecord {
  bool live = false;
  std::size_t offset = 0;              ///< of the record header in the file
  std::size_t header = kRecordHeader;  ///< kRecordHeaderV1 in a version 1 segment
  std::string_view payload;
};
/// Walks a segment file's records. Stops at the first record that is incomplete, malformed
/// or not matching its checksum and sets `end` to its offset (a crash leaves an
/// unacknowledged torn tail); returns nullopt when the file starts with neither magic line.
std::optional<std::vector<SegmentRecord>> parse_segment(std::string_view file, std::size_t& end);

}  // namespace truefrom::queue

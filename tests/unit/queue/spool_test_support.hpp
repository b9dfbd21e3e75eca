// What the spool's tests share: a sample envelope, a fixture with a fresh queue directory,
// readers of segment files, a file-size limit, and the failure injection of fdatasync()
// (spool_test_support.cpp).
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "submission/queue/spool.hpp"

// Failure injection (spool_test_support.cpp): while g_failing_syncs > 0, the spool's next
// fdatasync() calls fail with EIO, as when the kernel lost a write-back. Every call is
// counted in g_syncs.
extern std::atomic<int> g_failing_syncs;
extern std::atomic<int> g_syncs;

namespace truefrom::queue {

namespace fs = std::filesystem;

inline MessageInfo sample(const std::string& id) {
  MessageInfo m;
  m.id = id;
  m.mail_from = "alice@example.test";
  m.recipients = {"bob@dest.test", "\"odd local\"@dest.test"};
  m.eight_bit = true;
  m.smtputf8 = false;
  m.user = "alice";
  m.arrival = 1790000000;
  return m;
}

// What a segment record or a file in active/ holds: sample(id)'s head, then `data`.
inline std::string payload_of(const std::string& id, std::string_view data) {
  MessageInfo m = sample(id);
  m.size = data.size();
  return encode_head(m) + std::string(data);
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("spool-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

inline std::size_t bytes_in(const fs::path& p) {
  return static_cast<std::size_t>(fs::file_size(p));
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The records of a segment file, which must end in nothing but the zeros written ahead of
// them (a torn or stray octet after the last record would be a bug).
inline std::vector<SegmentRecord> records_in(const std::string& file) {
  std::size_t end = 0;
  auto records = parse_segment(file, end);
  EXPECT_TRUE(records);
  EXPECT_EQ(file.find_first_not_of('\0', end), std::string::npos)
      << "octets after the last record at " << end;
  return records ? *records : std::vector<SegmentRecord>{};
}
std::vector<SegmentRecord> records_in(std::string&&) = delete;  // views into a dead string

inline std::size_t live_records(const std::string& file) {
  const auto records = records_in(file);
  return static_cast<std::size_t>(
      std::count_if(records.begin(), records.end(), [](const auto& r) { return r.live; }));
}

inline std::vector<fs::path> segment_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir / "segments")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A file-size limit for this process while it lives (appends past it fail with EFBIG, as
// on a full disk; SIGXFSZ ignored as the server does).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &old_), 0);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_;
    small.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  struct rlimit old_ {};
  void (*old_handler_)(int) = nullptr;
};

// Writes and commits one message; returns false (with the error in the test log) on failure.
inline bool put(Spool& spool, const std::string& id, std::string_view data) {
  std::string error;
  auto w = spool.write(sample(id), {data}, error);
  const bool ok = w && spool.commit_and_wait(std::move(*w), error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

}  // namespace truefrom::queue

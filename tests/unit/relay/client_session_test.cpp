// Runs the golden client dialogues tests/golden/relay/*.md (format in
// tests/golden/relay/README.md) against ClientSession: each whole, byte by byte, and cut at
// every point of the relay's bytes; all must give the dialogue as written.
// TRUEFROM_REGENERATE=1 rewrites the dialogues with what the session does now (the relay's
// S: lines are kept); read the diff before committing it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "golden_dialogue.hpp"

namespace truefrom::relay {
namespace {

const char* const kDir = TRUEFROM_SOURCE_DIR "/tests/golden/relay";

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::filesystem::path> dialogue_files() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(kDir)) {
    if (e.path().extension() == ".md" && e.path().filename() != "README.md") {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ClientSessionGolden, EveryDialogueAtEverySplit) {
  const bool regenerate = std::getenv("TRUEFROM_REGENERATE") != nullptr;
  const auto files = dialogue_files();
  ASSERT_FALSE(files.empty()) << kDir;
  std::size_t cases = 0;
  for (const auto& path : files) {
    std::vector<std::string> lines = read_lines(path);
    const std::vector<golden::Case> parsed = golden::parse(lines);
    const std::size_t first = parsed.empty() ? lines.size() : parsed[0].begin;
    std::vector<std::string> rewritten(lines.begin(),
                                       lines.begin() + static_cast<std::ptrdiff_t>(first));
    for (std::size_t k = 0; k < parsed.size(); ++k) {
      const golden::Case& c = parsed[k];
      ++cases;
      SCOPED_TRACE(path.filename().string() + ": " + c.name);
      EXPECT_EQ(c.error, "");
      const std::string whole = golden::play(c, {}, false);
      if (!regenerate) EXPECT_EQ(whole, c.expected);
      EXPECT_EQ(golden::play(c, {}, true), whole) << "byte by byte";
      std::size_t total = 0;
      for (const auto& t : c.turns) total += t.bytes.size();
      for (std::size_t cut = 1; cut < total; ++cut) {
        const std::string split = golden::play(c, {cut}, false);
        EXPECT_EQ(split, whole) << "cut at octet " << cut;
        if (split != whole) break;
      }
      // Rewrite: the heading and options as they are, the dialogue played whole (its S:
      // lines are the file's), then the blank lines before the next case.
      for (std::size_t i = c.begin; i < c.header_end; ++i) rewritten.push_back(lines[i]);
      std::istringstream in(whole);
      for (std::string l; std::getline(in, l);) rewritten.push_back(l);
      const std::size_t next = k + 1 < parsed.size() ? parsed[k + 1].begin : lines.size();
      for (std::size_t i = c.end; i < next; ++i) rewritten.push_back(lines[i]);
    }
    if (regenerate) {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      for (const auto& l : rewritten) out << l << "\n";
    }
  }
  EXPECT_GE(cases, 20u);
}

}  // namespace
}  // namespace truefrom::relay

#include "auth/verified_passwords.hpp"

#include <gtest/gtest.h>

namespace truefrom::auth {
namespace {

using std::chrono::seconds;

TEST(VerifiedPasswords, RemembersOnlyTheSameLoginHashAndPassword) {
  VerifiedPasswords v(seconds(60));
  const auto t0 = VerifiedPasswords::Clock::now();
  EXPECT_FALSE(v.contains("alice", "$y$hash1", "secret", t0));
  v.insert("alice", "$y$hash1", "secret", t0);
  EXPECT_TRUE(v.contains("alice", "$y$hash1", "secret", t0));
  EXPECT_TRUE(v.contains("ALICE", "$y$hash1", "secret", t0));   // logins are case-insensitive
  EXPECT_FALSE(v.contains("alice", "$y$hash2", "secret", t0));  // password changed
  EXPECT_FALSE(v.contains("alice", "$y$hash1", "Secret", t0));
  EXPECT_FALSE(v.contains("bob", "$y$hash1", "secret", t0));
  // no ambiguity between where the login ends and the hash begins
  EXPECT_FALSE(v.contains("alice$", "y$hash1", "secret", t0));
}

TEST(VerifiedPasswords, EntriesExpire) {
  VerifiedPasswords v(seconds(60));
  const auto t0 = VerifiedPasswords::Clock::now();
  v.insert("alice", "h", "pw", t0);
  EXPECT_TRUE(v.contains("alice", "h", "pw", t0 + seconds(59)));
  EXPECT_FALSE(v.contains("alice", "h", "pw", t0 + seconds(60)));
}

TEST(VerifiedPasswords, StaysBounded) {
  VerifiedPasswords v(seconds(60), 3);
  const auto t0 = VerifiedPasswords::Clock::now();
  for (int i = 0; i < 10; ++i) v.insert("user" + std::to_string(i), "h", "pw", t0);
  int remembered = 0;
  for (int i = 0; i < 10; ++i) remembered += v.contains("user" + std::to_string(i), "h", "pw", t0);
  EXPECT_LE(remembered, 3);
  EXPECT_TRUE(v.contains("user9", "h", "pw", t0));
}

TEST(VerifiedPasswords, TwoInstancesUseDifferentKeys) {
  VerifiedPasswords a, b;
  a.insert("alice", "h", "pw");
  EXPECT_TRUE(a.contains("alice", "h", "pw"));
  EXPECT_FALSE(b.contains("alice", "h", "pw"));
}

}  // namespace
}  // namespace truefrom::auth

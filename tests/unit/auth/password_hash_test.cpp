#include "auth/password_hash.hpp"

#include <gtest/gtest.h>

namespace truefrom::auth {
namespace {

TEST(PasswordHash, YescryptRoundTrip) {
  const auto h = hash_password("correct horse");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->rfind("$y$", 0), 0u) << *h;
  EXPECT_TRUE(verify_password("correct horse", *h));
  EXPECT_FALSE(verify_password("correct horsE", *h));
  EXPECT_FALSE(verify_password("", *h));
}

TEST(PasswordHash, VerifiesShadowFormats) {
  // Produced with: openssl passwd -6 -salt saltsalt secret
  EXPECT_TRUE(verify_password(
      "secret",
      "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq."
      "H91p5hVO1"));
  EXPECT_FALSE(verify_password(
      "Secret",
      "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq."
      "H91p5hVO1"));
}

TEST(PasswordHash, RefusesUnusableHashesAndNul) {
  EXPECT_FALSE(verify_password("x", ""));
  EXPECT_FALSE(verify_password("x", "*"));
  EXPECT_FALSE(verify_password("x", "!locked"));
  EXPECT_FALSE(verify_password("x", "plaintext"));
  const auto h = hash_password("a");
  ASSERT_TRUE(h);
  EXPECT_FALSE(verify_password(std::string("a\0b", 3), *h));
}

}  // namespace
}  // namespace truefrom::auth

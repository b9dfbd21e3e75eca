#include "submission/core/address_list.hpp"

#include <gtest/gtest.h>

#include "submission/core/header_fields.hpp"
#include "submission/core/header_text.hpp"

namespace truefrom::smtp {
namespace {

TEST(AddressList, Table) {
  struct Case {
    const char* in;
    bool ok;
    const char* first;  // local@domain of the first mailbox
    const char* display;
    std::size_t count;
  };
  const Case cases[] = {
      {"alice@example.com", true, "alice@example.com", "", 1},
      {" \"Smith, Alice\" <alice@example.com>", true, "alice@example.com", "Smith, Alice", 1},
      {"A. B. Smith <alice@example.com>", true, "alice@example.com", "A. B. Smith", 1},
      {"<@r.example:alice@example.com>", true, "alice@example.com", "", 1},
      {"\"a b\"@example.com", true, "\"a b\"@example.com", "", 1},
      {"a@example.com, b@example.com", true, "a@example.com", "", 2},
      {", ,a@example.com,,", true, "a@example.com", "", 1},
      {"g: a@example.com, b@example.com;, c@example.com", true, "a@example.com", "", 3},
      {"=?utf-8?q?Ren=C3=A9e?= <r@example.com>", true, "r@example.com", "Renée", 1},
      {"a@[192.0.2.1]", true, "a@[192.0.2.1]", "", 1},
      {"alice", false, "", "", 0},
      {"", false, "", "", 0},
      {"<a@example.com", false, "", "", 0},
      {"a@example.com <b@example.com>", false, "", "", 0},
      {"g: a@example.com", false, "", "", 0},
      {"g: h: a@example.com;;", false, "", "", 0},
      {"a@", false, "", "", 0},
      {"a.@example.com", false, "", "", 0},
      {"a@example..com", false, "", "", 0},
      {"\"unterminated@example.com", false, "", "", 0},
      {"a@example.com (x", false, "", "", 0},
      {"\x7f@example.com", false, "", "", 0},
  };
  for (const auto& c : cases) {
    std::string error;
    const auto list = parse_address_list(c.in, &error);
    ASSERT_EQ(list.has_value(), c.ok) << c.in << " " << error;
    if (!list) {
      EXPECT_FALSE(error.empty()) << c.in;
      continue;
    }
    ASSERT_EQ(list->mailboxes.size(), c.count) << c.in;
    EXPECT_EQ(list->mailboxes[0].address.to_string(), c.first) << c.in;
    EXPECT_EQ(list->mailboxes[0].display_name, c.display) << c.in;
  }
}

TEST(AddressList, GroupsAndComments) {
  const auto l = parse_address_list("Team: a@example.com (Ann);, b@example.com (Bob (B))");
  ASSERT_TRUE(l);
  ASSERT_EQ(l->groups.size(), 1u);
  EXPECT_EQ(l->groups[0], "Team");
  EXPECT_EQ(l->mailboxes[0].group, "Team");
  EXPECT_EQ(l->mailboxes[0].comments, "Ann");
  EXPECT_EQ(l->mailboxes[1].comments, "Bob (B)");
  EXPECT_TRUE(parse_address_list("undisclosed-recipients:;")->mailboxes.empty());
}

TEST(HeaderFields, SplitsAndUnfolds) {
  const std::string m =
      "From: a@example.com\r\nSubject: one\r\n two\r\n\tthree\r\nX-Obs : v\r\n\r\nbody\r\n";
  const auto s = parse_header_section(m);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->fields.size(), 3u);
  EXPECT_EQ(s->fields[1].name, "Subject");
  EXPECT_EQ(s->fields[1].value, " one two\tthree");
  EXPECT_EQ(s->fields[2].name, "X-Obs");
  EXPECT_EQ(s->fields[2].line, 5u);
  EXPECT_EQ(m.substr(s->end), "\r\nbody\r\n");
  EXPECT_TRUE(field_name_is("FROM", "From"));
  EXPECT_FALSE(field_name_is("Fro", "From"));
  // Headers only, no body.
  EXPECT_EQ(parse_header_section("From: a@b.example\r\n")->fields.size(), 1u);
}

TEST(HeaderFields, RefusesWhatCouldBeReadTwoWays) {
  for (const char* bad : {" From: a@b.example\r\n\r\n", "From: a@b.example\r\nnot a field\r\n\r\n",
                          "From: a@b.example\r\nX Y: z\r\n\r\n", ": v\r\n\r\n"}) {
    std::string error;
    EXPECT_FALSE(parse_header_section(bad, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
  EXPECT_FALSE(parse_header_section(std::string("From: a\0b\r\n\r\n", 13)));
}

TEST(HeaderText, DecodesEncodedWords) {
  struct Case {
    const char* in;
    const char* want;
  };
  const Case cases[] = {
      {"=?utf-8?q?Ren=C3=A9e_M?=", "Renée M"},
      {"=?UTF-8?B?UmVuw6ll?=", "Renée"},
      {"=?iso-8859-1?q?Ren=E9e?=", "Renée"},
      {"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},
      {"=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b"},
      {"plain text", "plain text"},
      {"=?utf-8?q?bad=Z?=", "=?utf-8?q?bad=Z?="},
      {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
      {"=?koi8-r?q?=C1b?=",
       "\xEF\xBF\xBD"
       "b"},
  };
  for (const auto& c : cases) {
    const auto got = decode_encoded_words(c.in);
    ASSERT_TRUE(got) << c.in;
    EXPECT_EQ(*got, c.want) << c.in;
  }
  std::string error;
  EXPECT_FALSE(decode_encoded_words("=?utf-7?q?x?=", &error));
  EXPECT_NE(error.find("utf-7"), std::string::npos);
}

TEST(HeaderText, FindsAddressLikeStrings) {
  using V = std::vector<std::string>;
  EXPECT_EQ(address_like_strings("CEO ceo@Bank.Example via"), V{"ceo@bank.example"});
  EXPECT_EQ(address_like_strings("ｃｅｏ＠ｂａｎｋ．ｅｘａｍｐｌｅ"), V{"ceo@bank.example"});
  EXPECT_EQ(address_like_strings("a@b。example"), V{"a@b.example"});
  EXPECT_TRUE(address_like_strings("Alice@Home").empty());
  EXPECT_TRUE(address_like_strings("a @ b.example").empty());
  EXPECT_TRUE(address_like_strings("no at sign").empty());
  EXPECT_EQ(address_like_strings("x@a.example y@b.example").size(), 2u);
}

TEST(HeaderText, ValidUtf8) {
  EXPECT_TRUE(valid_utf8("Renée ＠"));
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));  // a surrogate
  EXPECT_FALSE(valid_utf8("\xE9"));
}

}  // namespace
}  // namespace truefrom::smtp

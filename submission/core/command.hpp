// SMTP command line tokenizer and MAIL/RCPT argument parser (RFC 5321 4.1, RFC 1870 SIZE,
// RFC 6152 8BITMIME, RFC 4954 AUTH= parameter). Pure functions over one command line without
// its CRLF; no I/O, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "submission/core/address.hpp"

namespace truefrom::smtp {

enum class Verb {
  kEhlo,
  kHelo,
  kStartTls,
  kAuth,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kExpn,
  kHelp,
  kHttp,  // "GET", "POST", ...: a web client talking to the wrong port
  kUnknown,
};

struct CommandLine {
  Verb verb = Verb::kUnknown;
  /// Everything after the verb and one space; empty when there is none.
  std::string_view argument;
};

/// Splits a command line into verb (case-insensitive) and argument.
CommandLine split_command(std::string_view line);

enum class BodyType { k7Bit, k8BitMime };

/// A parsed "MAIL FROM:<...> params" argument.
struct MailArgument {
  std::optional<Mailbox> sender;  ///< nullopt: the null reverse-path "<>"
  std::optional<std::uint64_t> size;
  BodyType body = BodyType::k7Bit;
  bool smtputf8 = false;  ///< RFC 6531 SMTPUTF8 parameter
};

/// A parsed "RCPT TO:<...>" argument.
struct RcptArgument {
  Mailbox recipient;
};

/// Why an argument was refused; `parameter` is true when the path was fine but an ESMTP
/// parameter was unknown or malformed (RFC 5321 4.1.1.11: 555), false for path syntax.
struct ArgumentError {
  std::string reason;
  bool parameter = false;
  /// The address is not ASCII and the transaction did not declare SMTPUTF8 (RFC 6531 3.7.4.1).
  bool needs_smtputf8 = false;
};

/// Parses the argument of MAIL ("FROM:<a@b> SIZE=123 BODY=8BITMIME").
std::optional<MailArgument> parse_mail_argument(std::string_view arg, ArgumentError* error);
/// Parses the argument of RCPT ("TO:<a@b>"); `smtputf8`: the transaction declared SMTPUTF8.
std::optional<RcptArgument> parse_rcpt_argument(std::string_view arg, ArgumentError* error,
                                                bool smtputf8 = false);

/// RFC 4648 base64; decoding refuses anything that is not canonical base64.
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace truefrom::smtp

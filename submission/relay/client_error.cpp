#include "submission/relay/client_error.hpp"

namespace truefrom::relay {
namespace {

class ClientCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "relay client"; }
  std::string message(int ev) const override {
    switch (static_cast<ClientError>(ev)) {
      case ClientError::kGreetingRefused:
        return "the relay refused the connection in its greeting";
      case ClientError::kEhloRefused:
        return "the relay refused EHLO";
      case ClientError::kStartTlsNotOffered:
        return "the relay does not offer STARTTLS, which is required";
      case ClientError::kStartTlsRefused:
        return "the relay refused STARTTLS, which is required";
      case ClientError::kDataBeforeTls:
        return "the relay sent data before the TLS handshake";
      case ClientError::kTlsNotVerified:
        return "no verified TLS, so the relay password is not sent";
      case ClientError::kAuthNotOffered:
        return "the relay does not offer AUTH PLAIN";
      case ClientError::kAuthRefused:
        return "the relay refused the credentials";
      case ClientError::kRsetRefused:
        return "the relay refused RSET";
      case ClientError::kRelayClosing:
        return "the relay closed the connection";
      case ClientError::kUnexpectedReply:
        return "the relay answered with a reply that command cannot have";
      case ClientError::kMalformedReply:
        return "malformed reply from relay";
      case ClientError::kReplyTooLong:
        return "reply from relay too long";
      case ClientError::kConnectionClosed:
        return "the relay closed the connection";
    }
    return "unknown relay client error";
  }
};

}  // namespace

const std::error_category& client_category() {
  static const ClientCategory category;
  return category;
}

}  // namespace truefrom::relay

#include "submission/net/message_signing.hpp"

#include <vector>

namespace truefrom::net {

namespace {

// The message's own fields ("Name: value\r\n" each, folded with CRLF + WSP), one view each
// without its final CRLF.
void split_fields(std::string_view fields, std::vector<std::string_view>& out) {
  std::size_t start = 0;
  for (std::size_t pos = 0; (pos = fields.find("\r\n", pos)) != std::string_view::npos;) {
    if (pos + 2 < fields.size() && (fields[pos + 2] == ' ' || fields[pos + 2] == '\t')) {
      pos += 2;
      continue;
    }
    out.push_back(fields.substr(start, pos - start));
    pos += 2;
    start = pos;
  }
}

}  // namespace

Signing sign_message(const SigningSetup& setup, const std::string& added, std::string_view message,
                     const smtp::HeaderSection& section, const std::string& from_domain) {
  if (!setup.keys || !setup.signer) {
    Signing off;
    off.outcome.audit = "unsigned (DKIM off)";
    return off;
  }
  Signing result;
  policy::SigningOutcome& out = result.outcome;
  const auto ring = setup.keys->current();
  const signer::Selection sel = ring->select(from_domain, setup.fallback_domain);
  if (sel.domain.empty()) {
    out.audit = "unsigned (no active key for " +
                (from_domain.empty() ? std::string("an unverified From:") : from_domain) +
                (setup.fallback_domain.empty() ? "" : " nor fallback " + setup.fallback_domain) +
                ")";
    return result;
  }
  out.domain = sel.domain;
  std::vector<const signer::SigningKey*> keys;
  for (const auto* k : sel.keys) {
    if (k->usable()) keys.push_back(k);
  }
  out.problem = sel.problems();
  if (!out.problem.empty() && setup.tempfail_on_key_error) {
    out.tempfail = true;
    out.audit = "not signed for " + sel.domain;
    return result;
  }
  if (keys.empty()) {
    out.audit = "unsigned (no usable key for " + sel.domain + ")";
    return result;
  }
  signer::MessageView view;
  view.headers.reserve(section.fields.size() + 8);
  split_fields(added, view.headers);
  for (const auto& f : section.fields) {
    view.headers.push_back(message.substr(f.offset, f.raw_end - f.offset));
  }
  view.body = message.substr(section.body_offset(message.size()));
  signer::SignResult r = setup.signer->sign(keys, view);
  if (!r.error.empty()) {
    out.problem = r.error;
    out.tempfail = true;
    out.audit = "not signed for " + sel.domain;
    return result;
  }
  out.audit = "d=" + sel.domain + (sel.fallback ? " (fallback)" : "") + " s=";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    out.audit += (i ? "," : "") + keys[i]->record.selector;
    result.fields += r.fields[i];
  }
  out.fields_size = result.fields.size();
  return result;
}

}  // namespace truefrom::net

// The identity store: accounts, password hashes, sender identities and the domains' DKIM
// key records in PostgreSQL (libpqxx), plus the schema migrations and the admin operations
// of the CLI.
//
// Every call blocks on the network: call it from the worker pool, never an I/O thread.
// libpqxx types and exceptions stay inside identity_store.cpp; callers see StoreStatus.
// Thread-safety: all methods may be called concurrently; connections come from an internal
// pool (one connection is used by one call at a time).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "auth/identity.hpp"
#include "auth/store_error.hpp"

namespace truefrom::auth {

/// The outcome of a store call: an error code (empty on success) and words for the admin.
struct StoreStatus {
  std::error_code code;
  std::string detail;
  explicit operator bool() const { return !code; }  ///< true on success
};

/// NOTIFY channels of the schema's triggers (0002: accounts and identities, 0003: DKIM keys).
inline const std::string kIdentityChannel = "truefrom_identities";
inline const std::string kDkimKeyChannel = "truefrom_dkim_keys";
inline const std::string kSrsRuleChannel = "truefrom_srs_rules";  ///< 0004: SRS rules
inline const std::string kSendingLimitChannel = "truefrom_sending_limits";  ///< 0005

class IdentityStore {
 public:
  /// `conninfo` is a libpq connection string or URI. Connects lazily.
  explicit IdentityStore(std::string conninfo);
  ~IdentityStore();
  IdentityStore(const IdentityStore&) = delete;
  IdentityStore& operator=(const IdentityStore&) = delete;

  /// The account `login` (matched case-insensitively) and its identities; `out` is empty
  /// when there is no such account.
  StoreStatus find_for_auth(const std::string& login, std::optional<AccountIdentities>& out);

  /// Success when the schema is at the version this binary expects.
  StoreStatus check_schema();
  /// Applies the missing migrations in one transaction; `applied` counts them.
  StoreStatus migrate(int& applied);

  StoreStatus add_account(const std::string& login, const std::string& password_hash);
  StoreStatus set_password(const std::string& login, const std::string& password_hash);
  StoreStatus set_enabled(const std::string& login, bool enabled);
  StoreStatus remove_account(const std::string& login);
  StoreStatus list_accounts(std::vector<Account>& out);
  /// Suspends the account (schema 0006) with `reason`; one already suspended keeps its
  /// first reason and time (`*already` is set).
  StoreStatus suspend(const std::string& login, const std::string& reason, bool* already = nullptr);
  StoreStatus resume(const std::string& login);
  StoreStatus set_forwarder(const std::string& login, bool forwarder);
  /// Adds the identity (with its on_behalf flag). When the account has it already in the
  /// other delegation form, the row is changed and `*updated` set.
  StoreStatus add_sender(const std::string& login, const SenderIdentity& identity,
                         bool* updated = nullptr);
  StoreStatus remove_sender(const std::string& login, const SenderIdentity& identity);
  /// Identities of one account, or of all accounts when `login` is empty, as (login, identity).
  StoreStatus list_senders(const std::optional<std::string>& login,
                           std::vector<std::pair<std::string, SenderIdentity>>& out);

  /// The DKIM key rows of `domain` (lower-case A-labels), or of all domains when it is
  /// empty, or only the active ones of all domains with `active_only`; by domain, then id.
  StoreStatus list_dkim_keys(const std::string& domain, bool active_only,
                             std::vector<DkimKeyRow>& out);
  /// Records a new key as pending; sets `row.id`. kExists when the selector is taken.
  StoreStatus add_dkim_key(DkimKeyRow& row);
  /// Makes the key active. In the same transaction, the domain's other active key of the
  /// same algorithm (at most one may be active) is retired: its selector goes to `*retired`.
  StoreStatus activate_dkim_key(const std::string& domain, const std::string& selector,
                                std::string* retired);
  /// Retires the key (it no longer signs; keep its DNS record a few days for mail in flight).
  StoreStatus retire_dkim_key(const std::string& domain, const std::string& selector);

  /// SRS rules (srs_rule_rows.cpp), ordered by domain, then global before per-account.
  StoreStatus list_srs_rules(std::vector<SrsRuleRow>& out);
  /// Adds the rule, or changes the action of the rule with the same domain and scope
  /// (`*replaced` then holds the old action). An unknown login is kNotFound.
  StoreStatus set_srs_rule(SrsRuleRow& row, std::string* replaced);
  StoreStatus remove_srs_rule(const std::string& domain, const std::string& login);

  /// Sending limits (sending_limit_rows.cpp, schema 0005): the rows, default first, then
  /// domains, then accounts.
  StoreStatus list_limit_rules(std::vector<LimitRuleRow>& out);
  /// Sets the values of `row` that are given (`clear[i]`: sets value i back to "not set")
  /// at its scope; a row left with no value is deleted. An account scope's login is
  /// matched case-insensitively and `row.login` becomes the stored spelling; unknown:
  /// kNotFound.
  StoreStatus set_limit_rule(LimitRuleRow& row, const std::array<bool, 4>& clear);
  /// The stored spelling of `login` (case-insensitive); kNotFound when there is none.
  StoreStatus canonical_login(const std::string& login, std::string& out);
  /// Adds the increments in one statement (batched by the caller).
  StoreStatus add_counts(const std::vector<SlotCount>& increments);
  /// The slots since `since` of the given logins (as stored), in one statement.
  StoreStatus read_counts(const std::vector<std::string>& logins, std::int64_t since,
                          std::vector<SlotCount>& out);
  /// Deletes the counts of `login` (as stored): its limits start afresh.
  StoreStatus reset_counts(const std::string& login);
  /// Deletes the slots before `before` (every account's).
  StoreStatus expire_counts(std::int64_t before);

  /// Blocks on a dedicated connection that LISTENs on `channel`: calls `on_ready` once
  /// listening, then `on_change(payload)` for every notification. On kIdentityChannel the
  /// payload is the lower-case login of a changed account or its identities ("" for
  /// "everything"); on kDkimKeyChannel the domain of a changed key. Returns when `stop`
  /// becomes true (checked every 200 ms) or, with an error, when the connection fails.
  StoreStatus listen_for_changes(const std::string& channel, const std::atomic<bool>& stop,
                                 const std::function<void()>& on_ready,
                                 const std::function<void(const std::string&)>& on_change);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace truefrom::auth

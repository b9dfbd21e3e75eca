// Internals of the store shared by its translation units (identity_store.cpp,
// dkim_key_rows.cpp): the connection pool and the mapping of libpqxx exceptions to
// StoreStatus. Not part of the interface; nothing outside auth/ includes it.
#pragma once

#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "auth/identity_store.hpp"

namespace truefrom::auth {

constexpr std::size_t kMaxIdleConnections = 16;

inline StoreStatus fail(StoreErrc e, std::string detail) {
  return {make_error_code(e), std::move(detail)};
}

inline std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

inline StoreStatus expect_one(const pqxx::result& r, const std::string& login) {
  if (r.affected_rows() == 0) return fail(StoreErrc::kNotFound, "no account " + login);
  return StoreStatus{};
}

struct IdentityStore::Impl {
  std::string conninfo;
  std::mutex mutex;
  std::vector<std::unique_ptr<pqxx::connection>> idle;

  std::unique_ptr<pqxx::connection> take() {
    {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    return std::make_unique<pqxx::connection>(conninfo);
  }

  void give_back(std::unique_ptr<pqxx::connection> c) {
    std::lock_guard lock(mutex);
    if (idle.size() < kMaxIdleConnections && c->is_open()) idle.push_back(std::move(c));
  }

  // Runs `body` on a pooled connection. A pooled connection found broken (PostgreSQL
  // restarted) is replaced once; every libpqxx exception becomes a StoreStatus.
  template <class F>
  StoreStatus run(F body) {
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<pqxx::connection> c;
      try {
        c = take();
        StoreStatus st = body(*c);
        give_back(std::move(c));
        return st;
      } catch (const pqxx::broken_connection& e) {
        if (attempt == 0 && c) continue;
        return fail(StoreErrc::kUnavailable, "cannot reach PostgreSQL: " + one_line(e.what()));
      } catch (const pqxx::unique_violation& e) {
        give_back(std::move(c));
        return fail(StoreErrc::kExists, one_line(e.what()));
      } catch (const pqxx::foreign_key_violation& e) {
        give_back(std::move(c));
        return fail(StoreErrc::kNotFound, one_line(e.what()));
      } catch (const pqxx::check_violation& e) {
        give_back(std::move(c));
        return fail(StoreErrc::kInvalid, one_line(e.what()));
      } catch (const pqxx::undefined_table& e) {
        give_back(std::move(c));
        return fail(StoreErrc::kSchemaMissing,
                    "the database has no truefrom schema (" + one_line(e.what()) + ")");
      } catch (const pqxx::sql_error& e) {
        give_back(std::move(c));
        return fail(StoreErrc::kUnavailable, "PostgreSQL error: " + one_line(e.what()));
      } catch (const std::exception& e) {
        return fail(StoreErrc::kUnavailable, "PostgreSQL failure: " + one_line(e.what()));
      }
    }
  }

  // One statement changing exactly the account `login` ($1); `args` are $2, ...
  // A single statement is atomic on its own, so no explicit transaction is needed.
  template <class... Args>
  StoreStatus change_account(const std::string& login, const char* sql, const Args&... args) {
    return run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      return expect_one(tx.exec_params(sql, login, args...), login);
    });
  }
};

}  // namespace truefrom::auth

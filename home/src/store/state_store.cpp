// The state's store location (pass/home/state_store.hpp): database.xml read and written, the
// one decision between SQLite and PostgreSQL.

#include "pass/home/state_store.hpp"

#include <array>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "platform/fs.hpp"
#include "store/postgres/pg.hpp"

namespace pass::home {

namespace {

namespace fs = std::filesystem;
using config::AttributeDecl;
using config::ElementDecl;
using config::Type;

constexpr std::string_view kRoot = "pass-home-database";
constexpr std::string_view kPostgres = "pass-home-database/postgresql";

constexpr std::array kElements{
    ElementDecl{kRoot, 1, 1, "The home's store, when it is not SQLite in STATE/home.db."},
    ElementDecl{kPostgres, 1, 1, "The PostgreSQL database every home of a cluster shares."},
};

constexpr std::array kAttributes{
    AttributeDecl{kRoot, "schema", Type::kUint, true, "", "Always 1."},
    AttributeDecl{kPostgres, "url", Type::kString, true, "",
                  "postgresql://user@host:port/database, libpq's options after '?'; never a "
                  "password."},
    AttributeDecl{kPostgres, "password-file", Type::kPath, false, "",
                  "The password's file (its first line), relative to the state directory; "
                  "empty: none (trust, peer or ~/.pgpass)."},
};

bool isPostgresUrl(std::string_view url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

}  // namespace

const config::Schema& databaseSchema() {
  static const config::Schema kSchema{kElements, kAttributes};
  return kSchema;
}

Result<StoreLocation> stateStoreLocation(const StatePaths& paths) {
  const fs::path file = paths.databaseConfig();
  std::error_code ec;
  if (!fs::exists(file, ec)) return StoreLocation{.sqliteFile = paths.sqliteDatabase()};
  auto text = config::readConfigFile(file);
  if (!text) return std::unexpected(text.error());
  auto parsed = config::parse(databaseSchema(), *text, file.string());
  if (!parsed) return std::unexpected(parsed.error());
  config::Findings findings(file.string());
  const config::Node* root = parsed->first(kRoot);
  if (config::uintAttribute(*root, "schema") != 1) findings.add(*root, "schema", "must be 1");
  const config::Node* pg = parsed->first(kPostgres);
  StoreLocation where;
  where.postgresUrl = config::attribute(*pg, "url");
  if (!isPostgresUrl(where.postgresUrl)) {
    findings.add(*pg, "url", "must start with postgresql:// (postgresql://user@host:port/db)");
  }
  if (const auto& password = config::attribute(*pg, "password-file"); !password.empty()) {
    where.passwordFile = config::resolvePath(paths.dir, password);
  }
  if (auto ok = findings.status(); !ok) return std::unexpected(ok.error());
  return where;
}

Result<Store> openStateStore(const StatePaths& paths, Store::Mode mode) {
  auto where = stateStoreLocation(paths);
  if (!where) return std::unexpected(where.error());
  return Store::open(*where, mode);
}

Status recordPostgresStore(const StatePaths& paths, const StoreLocation& target) {
  if (!isPostgresUrl(target.postgresUrl)) {
    return fail("store.url", fmt::format("'{}' is not a postgresql://user@host:port/database URL",
                                         target.postgresUrl));
  }
  pugi::xml_document doc;
  doc.append_child(pugi::node_comment)
      .set_value(" The home's store (docs/scale-out.md); written by pass-home init or migrate. ");
  auto root = doc.append_child(std::string(kRoot).c_str());
  root.append_attribute("schema") = 1;
  auto pg = root.append_child("postgresql");
  pg.append_attribute("url") = target.postgresUrl.c_str();
  if (!target.passwordFile.empty()) {
    auto password = postgres::readPassword(target.passwordFile, target.postgresUrl);
    if (!password) return std::unexpected(password.error());
    if (auto done = platform::writeFileAtomic(paths.databasePassword(), *password + "\n",
                                              /*privateFile=*/true);
        !done) {
      return done;
    }
    pg.append_attribute("password-file") = paths.databasePassword().filename().string().c_str();
  }
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default, pugi::encoding_utf8);
  return platform::writeFileAtomic(paths.databaseConfig(), out.str());
}

}  // namespace pass::home

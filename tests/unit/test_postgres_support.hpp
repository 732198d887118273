#pragma once
// A real PostgreSQL for unit tests: the throwaway cluster tests/integration/pgcluster.py
// starts. Under ctest the fixture "postgres" (tests/CMakeLists.txt) starts one for every test
// and names its info file in PASS_TEST_POSTGRES; a test binary run alone starts its own on
// first use and stops it at exit. Each TestDatabase is a fresh database, dropped at its end.

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "store/postgres/pg.hpp"
#include "test_support.hpp"

namespace pass::home::test {

class PgTestCluster {
 public:
  static PgTestCluster& get() {
    static PgTestCluster cluster;
    return cluster;
  }
  PgTestCluster(const PgTestCluster&) = delete;
  PgTestCluster& operator=(const PgTestCluster&) = delete;
  ~PgTestCluster() {
    if (own_ && std::system(command("stop").c_str()) != 0) {
      std::fprintf(stderr, "tests/integration/pgcluster.py could not stop the cluster of %s\n",
                   info_.c_str());
    }
  }

  /// postgresql://pass@127.0.0.1:PORT/DATABASE
  std::string url(const std::string& database) const {
    return fmt::format("postgresql://pass@127.0.0.1:{}/{}", port_, database);
  }
  const std::string& passwordFile() const { return passwordFile_; }
  int port() const { return port_; }

 private:
  PgTestCluster() {
    if (const char* info = std::getenv("PASS_TEST_POSTGRES"); info && *info) {
      info_ = info;
    } else {
      own_ = std::make_unique<pass::test::TempDir>();
      info_ = (own_->path() / "postgres.json").string();
      REQUIRE_MESSAGE(std::system(command("start").c_str()) == 0,
                      "tests/integration/pgcluster.py could not start PostgreSQL");
    }
    std::ifstream in(info_);
    REQUIRE_MESSAGE(in.good(), info_ << ": no running test cluster (ctest's fixture "
                                        "'postgres' writes it)");
    auto json = nlohmann::json::parse(in);
    port_ = json.at("port").get<int>();
    passwordFile_ = json.at("password_file").get<std::string>();
  }
  std::string command(std::string_view verb) const {
    return fmt::format("python3 '{}/tests/integration/pgcluster.py' {} '{}' >&2", PASS_SOURCE_DIR,
                       verb, info_);
  }

  std::unique_ptr<pass::test::TempDir> own_;
  std::string info_;
  std::string passwordFile_;
  int port_ = 0;
};

inline postgres::Connection pgConnect(const std::string& url) {
  auto db = postgres::Connection::connect(url, PgTestCluster::get().passwordFile());
  REQUIRE_MESSAGE(db.has_value(), pass::test::errorText(db));
  return std::move(*db);
}

/// A new empty database for one test, owned by the role `pass`; dropped at the end.
class TestDatabase {
 public:
  TestDatabase()
      : name_("t_" + toHex(randomBytes(6))), admin_(pgConnect(PgTestCluster::get().url("pass"))) {
    auto made = admin_.script("create the test database", "CREATE DATABASE " + name_);
    REQUIRE_MESSAGE(made.has_value(), pass::test::errorText(made));
  }
  ~TestDatabase() {
    (void)admin_.script("drop the test database", "DROP DATABASE " + name_ + " WITH (FORCE)");
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  std::string url() const { return PgTestCluster::get().url(name_); }
  postgres::Connection connect() const { return pgConnect(url()); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  postgres::Connection admin_;
};

}  // namespace pass::home::test

// The keys every home of a cluster shares (pass/home/cluster_keys.hpp, docs/scale-out.md):
// ClusterStore's record of their fingerprints, the check at serve, `init --join` and the HPKE
// rotation that records its new key, on a real PostgreSQL; SQLite has nothing to check.

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "pass/home/cluster_keys.hpp"
#include "pass/home/hpke_keys.hpp"
#include "pass/home/pki.hpp"
#include "store/cluster_store.hpp"
#include "test_home_store_backends.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::PostgresStoreBackend;
using pass::test::errorText;
using pass::test::TempDir;

namespace {

namespace fs = std::filesystem;

/// A state made by `pass-home init` on `database`, in `dir`/`name`.
StatePaths initOn(const TempDir& dir, const std::string& name, const StoreLocation& database) {
  InitOptions options;
  options.state = dir.path() / name;
  options.database = database;
  auto done = initState(options);
  REQUIRE_MESSAGE(done.has_value(), errorText(done));
  return StatePaths(options.state);
}

int mode(const fs::path& file) {
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 0777);
}

}  // namespace

TEST_CASE("the first home's fingerprints are the cluster's: a second one reads them back") {
  PostgresStoreBackend backend;
  REQUIRE(Store::open(backend.location(), Store::Mode::kCreate).has_value());
  auto first = ClusterStore::open(backend.location());
  auto second = ClusterStore::open(backend.location());
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  const KeyFingerprints a{{"ca", std::string(64, 'a')}, {"hpke", std::string(64, 'b')}};
  const KeyFingerprints b{{"ca", std::string(64, 'c')}, {"hpke", std::string(64, 'd')}};
  CHECK(first->recordKeys(a).value() == a);
  CHECK(second->recordKeys(b).value() == a);
  REQUIRE(second->replaceKey("hpke", std::string(64, 'e')).has_value());
  CHECK(first->recordKeys(a).value() ==
        KeyFingerprints{{"ca", std::string(64, 'a')}, {"hpke", std::string(64, 'e')}});
}

TEST_CASE("on SQLite there is nothing to check: one home") {
  TempDir dir;
  auto state = initOn(dir, "home", StoreLocation{});
  CHECK(checkClusterKeys(state).has_value());
}

TEST_CASE("init makes admin.token and ack.key, private, so that a new state can be joined") {
  TempDir dir;
  auto state = initOn(dir, "home", StoreLocation{});
  CHECK(mode(state.adminToken()) == 0600);
  CHECK(mode(state.ackKey()) == 0600);
}

TEST_CASE("a home made by init --join has the cluster's keys; one made apart is refused") {
  PostgresStoreBackend backend;
  TempDir dir;
  auto first = initOn(dir, "first", backend.location());
  REQUIRE(checkClusterKeys(first).has_value());  // records them

  StatePaths joined(dir.path() / "joined");
  auto done = joinCluster(joined, first);
  REQUIRE_MESSAGE(done.has_value(), errorText(done));
  CHECK(checkClusterKeys(joined).has_value());
  for (const auto& file : {joined.caKey(), joined.serverKey(), joined.hpkeKey(),
                           joined.adminToken(), joined.ackKey(), joined.databasePassword()}) {
    CAPTURE(file);
    CHECK(mode(file) == 0600);
  }

  auto apart = initOn(dir, "apart", backend.location());
  auto refused = checkClusterKeys(apart);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "cluster_keys");
  const std::string& why = refused.error().message;
  CAPTURE(why);
  for (const char* named :
       {"the CA certificate", "the server certificate's key", "the current HPKE key",
        "the admin token", "the acknowledgement key", "ca.key, ca.crt", "--join"}) {
    CHECK(why.find(named) != std::string::npos);
  }

  SUBCASE("a copy of only the HPKE key is still refused for the others") {
    fs::copy_file(first.hpkeKey(), apart.hpkeKey(), fs::copy_options::overwrite_existing);
    fs::copy_file(first.hpkePub(), apart.hpkePub(), fs::copy_options::overwrite_existing);
    auto still = checkClusterKeys(apart);
    REQUIRE_FALSE(still.has_value());
    CHECK(still.error().message.find("the current HPKE key") == std::string::npos);
    CHECK(still.error().message.find("the CA certificate") != std::string::npos);
  }
}

TEST_CASE(
    "a rotation on one home is the cluster's key: the others are refused until they copy it") {
  PostgresStoreBackend backend;
  TempDir dir;
  auto first = initOn(dir, "first", backend.location());
  REQUIRE(checkClusterKeys(first).has_value());
  StatePaths second(dir.path() / "second");
  REQUIRE(joinCluster(second, first).has_value());

  auto rotated = rotateClusterHpkeKey(first, 1'000'000, kRetiredKeyKeepMs);
  REQUIRE_MESSAGE(rotated.has_value(), errorText(rotated));
  CHECK(checkClusterKeys(first).has_value());
  auto refused = checkClusterKeys(second);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message.find("the current HPKE key") != std::string::npos);
  CHECK(refused.error().message.find("hpke-keys.json") != std::string::npos);
  CHECK(refused.error().message.find("the CA certificate") == std::string::npos);

  SUBCASE("the refused home cannot make its own key the cluster's by rotating") {
    auto again = rotateClusterHpkeKey(second, 2'000'000, kRetiredKeyKeepMs);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().code == "cluster_keys");
    CHECK(checkClusterKeys(first).has_value());
  }
  SUBCASE("copying the key ring makes it a home of the cluster again") {
    fs::copy_file(first.hpkeKeys(), second.hpkeKeys(), fs::copy_options::overwrite_existing);
    fs::copy_file(first.hpkePub(), second.hpkePub(), fs::copy_options::overwrite_existing);
    fs::remove(second.hpkeKey());
    CHECK(checkClusterKeys(second).has_value());
  }
}

TEST_CASE("init --join refuses an SQLite home, a folder without a home, and a NEW with a home") {
  TempDir dir;
  auto sqlite = initOn(dir, "sqlite", StoreLocation{});
  auto refused = joinCluster(StatePaths(dir.path() / "new"), sqlite);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "join.sqlite");
  CHECK(refused.error().message.find("pass-home migrate") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "new"));

  auto nothing = joinCluster(StatePaths(dir.path() / "new"), StatePaths(dir.path() / "empty"));
  REQUIRE_FALSE(nothing.has_value());
  CHECK(nothing.error().code == "join.not_a_home");

  PostgresStoreBackend backend;
  auto first = initOn(dir, "first", backend.location());
  auto occupied = joinCluster(sqlite, first);
  REQUIRE_FALSE(occupied.has_value());
  CHECK(occupied.error().code == "already_initialized");

  fs::remove(first.ackKey());
  auto incomplete = joinCluster(StatePaths(dir.path() / "new"), first);
  REQUIRE_FALSE(incomplete.has_value());
  CHECK(incomplete.error().code == "join.incomplete");
  CHECK(incomplete.error().message.find("ack.key") != std::string::npos);
}

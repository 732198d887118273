// pass-bench-svp: how fast the hitachi_svp collector reads SIM logs. Generates a log in memory
// in each built-in line profile and parses it line by line as the collector does (split at
// '\n', parseSimLine); prints MB/s of log text. CPU-bound: no file I/O is timed.
//
//   pass-bench-svp [--megabytes 64] [--rounds 3]

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "collectors/hitachi_svp/sim.hpp"

namespace pass::hitachi_svp {
extern const std::string_view kDefaultProfilesJson;
}

namespace {

namespace po = boost::program_options;
using namespace pass::hitachi_svp;

constexpr std::string_view kSsb =
    "00 90 10 00 00 00 8F E0 44 10 00 04 00 80 04 0C 69 00 00 00 00 02 30 70 05 10 42 C0 F1 00 02 "
    "00";

std::string makeLog(const LineProfile& profile, std::size_t bytes) {
  static constexpr std::string_view kSeverities[] = {"Acute", "Serious", "Moderate", "Service"};
  std::string log;
  log.reserve(bytes + 256);
  for (std::size_t i = 0; log.size() < bytes; ++i) {
    // Time moves forward as in a real log: one SIM a second.
    auto day = 1 + i / 86400 % 28;
    auto second = i % 86400;
    auto severity = kSeverities[i % 4];
    std::string date = fmt::format("2026/11/{:02}", day);
    std::string time =
        fmt::format("{:02}:{:02}:{:02}", second / 3600, second / 60 % 60, second % 60);
    if (profile.name == "pass-ssb-tsv") {
      log += fmt::format("{}\t{}\t{}\tCACHE\t{}\tCache failure on cluster {}\n", date, time,
                         severity, kSsb, i % 2 + 1);
    } else {
      log += fmt::format("{},{},{:06X},{},DKC,Processor failure on MP {}\n", date, time,
                         0x300000 + i % 4096, severity, i % 64);
    }
  }
  return log;
}

int run(std::size_t megabytes, int rounds) {
  auto profiles = parseProfiles(kDefaultProfilesJson, "built-in");
  if (!profiles) {
    std::cerr << "pass-bench-svp: " << profiles.error().message << "\n";
    return 1;
  }
  for (const auto& profile : *profiles) {
    const std::string log = makeLog(profile, megabytes << 20);
    double best = 0;
    std::size_t events = 0;
    for (int r = 0; r < rounds; ++r) {
      events = 0;
      auto t0 = std::chrono::steady_clock::now();
      std::string_view rest = log;
      while (!rest.empty()) {
        auto end = rest.find('\n');
        auto line = rest.substr(0, end);
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        if (auto e = parseSimLine(profile, line)) ++events;
      }
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, static_cast<double>(log.size()) / (1 << 20) / secs);
    }
    std::cout << fmt::format("{:<14} {:>6.0f} MB/s  ({} MiB, {} lines, best of {})\n", profile.name,
                             best, megabytes, events, rounds);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t megabytes = 64;
  int rounds = 3;
  po::options_description desc("pass-bench-svp options");
  desc.add_options()("help,h", "show help")("megabytes", po::value(&megabytes)->default_value(64),
                                            "log size per profile")(
      "rounds", po::value(&rounds)->default_value(3), "passes per profile; the best counts");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "pass-bench-svp: " << e.what() << "\n";
    return 2;
  }
  return run(megabytes, rounds);
}

// pass-agent: the Linux appliance's entry point. Parses the command line and calls libpass.
// Exit codes are an interface (cron and systemd act on them); docs/agent.md lists them.

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include <malloc.h>

#include <fmt/format.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "pass/agent.hpp"
#include "pass/collector.hpp"
#include "pass/config.hpp"
#include "pass/payload.hpp"

namespace po = boost::program_options;

namespace {

enum Exit : int {
  kOk = 0,
  kFailure = 1,          // runtime failure: keys unreadable, state I/O, another run holds the lock
  kConfigError = 2,      // bad command line or agent.xml; nothing was sent
  kSpoolFull = 3,        // an envelope could not be stored: the spool is full of alerts
  kTestRefused = 4,      // test: the home refused the message (4xx)
  kTestUnreachable = 5,  // test: no home endpoint gave an answer (network, TLS, 5xx)
};

constexpr const char* kDefaultConfig = "/etc/pass/agent.xml";

std::string isoTime(std::optional<std::uint64_t> ms) {
  if (!ms) return "never";
  std::time_t t = static_cast<std::time_t>(*ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void usage(std::ostream& out) {
  out << "usage: pass-agent COMMAND [--config FILE] [options]\n\n"
         "commands:\n"
         "  run               one scheduled cycle: collect every array, heartbeat when due,\n"
         "                    then flush the spool\n"
         "  parse             decode one captured array output and print its events\n"
         "  test              seal a test message, send it now, print the home's answer\n"
         "  check-config      validate the configuration and the key files it names\n"
         "  status            spool depth, last delivery, next heartbeat\n"
         "  forget-pin        forget an array's pinned SSH/TLS keys (after a replacement)\n"
         "  config-reference  print the agent.xml reference (markdown)\n\n"
         "options:\n"
         "  --config FILE     agent configuration (default /etc/pass/agent.xml)\n"
         "  --message TEXT    test: the text of the test message\n"
         "  --json            status: machine-readable output\n"
         "  --dry-run         run: collect and print new events as JSON lines; send nothing,\n"
         "                    advance no cursor\n"
         "  --array SERIAL    forget-pin: the array's serial number\n"
         "  --family F        parse: the array family (hitachi_svp, ...)\n"
         "  --source S        parse: what the file is (pass-agent parse --family F lists them)\n"
         "  FILE              parse: the captured output\n\n"
         "exit codes: 0 ok, 1 runtime failure, 2 configuration error, 3 spool full,\n"
         "            4 test refused by the home, 5 test: no home reachable\n";
}

int reportError(const pass::Error& e) {
  std::cerr << "pass-agent: " << e.message << " [" << e.code << "]\n";
  if (e.code.starts_with("config.")) return kConfigError;
  if (e.code == "spool_full") return kSpoolFull;
  return kFailure;
}

void printArrayRun(const pass::ArrayRun& run) {
  for (const auto& note : run.notes) {
    std::cerr << fmt::format("{} {}: {}\n", run.array.family, run.array.serial, note);
  }
  if (run.status.state == "ok") {
    std::cout << fmt::format("collect: {} {}: {} new event(s) in {} ms\n", run.array.family,
                             run.array.serial, run.events.size(), run.status.durationMs);
  } else {
    std::cout << fmt::format("collect: {} {}: {}: {}\n", run.array.family, run.array.serial,
                             run.status.state, run.status.message);
  }
}

int dryRunCommand(const pass::AgentConfig& cfg) {
  auto agent = pass::Agent::open(cfg);
  if (!agent) return reportError(agent.error());
  bool allOk = true;
  for (const auto& run : agent->collectOnly()) {
    for (const auto& event : run.events) {
      std::cout << pass::payload::event(run.array, event).dump() << "\n";
    }
    for (const auto& note : run.notes) {
      std::cerr << fmt::format("{} {}: {}\n", run.array.family, run.array.serial, note);
    }
    std::cerr << fmt::format("dry-run: {} {}: {}{}{}, {} new event(s)\n", run.array.family,
                             run.array.serial, run.status.state,
                             run.status.message.empty() ? "" : ": ", run.status.message,
                             run.events.size());
    allOk = allOk && run.status.state == "ok";
  }
  return allOk ? kOk : kFailure;
}

int parseCommand(const po::variables_map& vm) {
  const auto& registry = pass::builtinCollectors();
  auto families = [&registry] {
    std::string list;
    for (const auto& c : registry.all())
      list += fmt::format("{}{}", list.empty() ? "" : ", ", c.family);
    return list;
  };
  if (!vm.count("family")) {
    std::cerr << "pass-agent: parse needs --family (one of: " << families() << ")\n";
    return kConfigError;
  }
  const auto family = vm["family"].as<std::string>();
  const pass::CollectorInfo* info = registry.find(family);
  if (info == nullptr) {
    std::cerr << fmt::format("pass-agent: unknown family '{}' (this build has: {})\n", family,
                             families());
    return kConfigError;
  }
  std::string sources;
  for (const auto& src : info->sources) {
    sources += fmt::format("\n  {:<12} {}", src.name, src.description);
  }
  if (!vm.count("source") || !vm.count("file")) {
    std::cerr << fmt::format("pass-agent: parse needs --source S and FILE; sources of {}:{}\n",
                             family, sources);
    return kConfigError;
  }
  const auto sourceName = vm["source"].as<std::string>();
  auto source = std::find_if(info->sources.begin(), info->sources.end(),
                             [&](const pass::ParseSource& src) { return src.name == sourceName; });
  if (source == info->sources.end()) {
    std::cerr << fmt::format("pass-agent: {} has no source '{}'; its sources:{}\n", family,
                             sourceName, sources);
    return kConfigError;
  }
  const auto file = vm["file"].as<std::string>();
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << fmt::format("pass-agent: cannot open {}: {}\n", file, std::strerror(errno));
    return kFailure;
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    std::cerr << fmt::format("pass-agent: cannot read {}: {}\n", file, std::strerror(errno));
    return kFailure;
  }
  pass::ArrayConfig array;
  array.family = family;
  array.serial = vm.count("serial") ? vm["serial"].as<std::string>() : "-";
  array.where = file;
  auto events = source->parse(text, array);
  if (!events) {
    std::cerr << fmt::format("pass-agent: {}: {} [{}]\n", file, events.error().message,
                             events.error().code);
    return kFailure;
  }
  for (const auto& event : *events) std::cout << pass::payload::event(array, event).dump() << "\n";
  std::cerr << fmt::format("parse: {} event(s) from {}\n", events->size(), file);
  return kOk;
}

int runCommand(const pass::AgentConfig& cfg) {
  auto agent = pass::Agent::open(cfg);
  if (!agent) return reportError(agent.error());
  auto summary = agent->run();
  if (!summary) return reportError(summary.error());
  for (const auto& run : summary->arrays) printArrayRun(run);
  std::cout << fmt::format(
      "run: heartbeat {}, delivered {}, duplicates {}, quarantined {}, still spooled {}\n",
      summary->heartbeatSpooled ? "spooled" : "not due", summary->delivered, summary->duplicates,
      summary->quarantined, summary->remaining);
  if (summary->stoppedBy) {
    std::cout << fmt::format("run: home not reachable, will retry next run: {} ({}): {}\n",
                             summary->stoppedBy->endpoint, summary->stoppedBy->errorCode,
                             summary->stoppedBy->detail);
  }
  if (summary->spoolRefusal) return reportError(*summary->spoolRefusal);
  return kOk;
}

int testCommand(const pass::AgentConfig& cfg, const std::string& message) {
  auto agent = pass::Agent::open(cfg);
  if (!agent) return reportError(agent.error());
  auto answer = agent->sendTest(message);
  if (!answer) return reportError(answer.error());
  std::cout << fmt::format("test: {} by {} (HTTP {})\n", pass::toString(answer->delivery),
                           answer->endpoint, answer->httpStatus);
  if (!answer->body.empty()) std::cout << "home answered: " << answer->body << "\n";
  if (!answer->detail.empty()) std::cout << "detail: " << answer->detail << "\n";
  switch (answer->delivery) {
    case pass::Delivery::kAccepted:
    case pass::Delivery::kDuplicate:
      return kOk;
    case pass::Delivery::kRefused:
      return kTestRefused;
    case pass::Delivery::kRetry:
      return kTestUnreachable;
  }
  return kFailure;
}

int checkConfigCommand(const pass::AgentConfig& cfg) {
  for (const auto& [what, path] :
       {std::pair{"agent-sign.key", cfg.signKey}, std::pair{"agent-tls.key", cfg.tlsKey},
        std::pair{"agent-tls.crt", cfg.tlsCert}, std::pair{"home-ca.crt", cfg.homeCa},
        std::pair{"home-hpke.pub", cfg.homeHpke}}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      std::cerr << fmt::format("pass-agent: {}: {} file {} is missing\n", cfg.file.string(), what,
                               path.string());
      return kConfigError;
    }
  }
  if (auto k = pass::Ed25519Key::loadPem(cfg.signKey.string()); !k || !k->hasPrivate()) {
    std::cerr << "pass-agent: "
              << (k ? cfg.signKey.string() + " holds no private key" : k.error().message) << "\n";
    return kConfigError;
  }
  if (auto k = pass::X25519Key::loadPem(cfg.homeHpke.string()); !k) {
    std::cerr << "pass-agent: " << k.error().message << "\n";
    return kConfigError;
  }
  for (const auto& array : cfg.arrays) {
    // Building the collector checks the array's own settings (profiles, paths, ...).
    if (auto collector = pass::createCollector(array); !collector) {
      std::cerr << "pass-agent: " << collector.error().message << "\n";
      return kConfigError;
    }
  }
  std::cout << fmt::format("{}: ok (agent {}, customer {}, site {}, {} endpoint(s), {} array(s))\n",
                           cfg.file.string(), pass::formatUuid(cfg.agentId), cfg.customer, cfg.site,
                           cfg.endpoints.size(), cfg.arrays.size());
  return kOk;
}

int statusCommand(const pass::AgentConfig& cfg, bool json) {
  auto st = pass::readStatus(cfg);
  if (!st) return reportError(st.error());
  auto optMs = [](const std::optional<std::uint64_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  const auto& s = st->state;
  std::optional<std::uint64_t> nextDue;
  if (s.nextHeartbeatDueMs) nextDue = s.nextHeartbeatDueMs;
  if (json) {
    nlohmann::json j = {{"agent", pass::formatUuid(cfg.agentId)},
                        {"spool_depth", st->spoolDepth},
                        {"spool_bytes", st->spoolBytes},
                        {"quarantined", st->quarantined},
                        {"last_run_ms", optMs(s.lastRunMs)},
                        {"last_delivery_ms", optMs(s.lastDeliveryMs)},
                        {"next_heartbeat_due_ms", optMs(nextDue)},
                        {"last_error", s.lastError},
                        {"dropped_heartbeats", s.droppedHeartbeats},
                        {"refused_envelopes", s.refusedEnvelopes},
                        {"arrays", nlohmann::json::array()}};
    for (const auto& a : s.arrays) j["arrays"].push_back(pass::payload::arrayStatus(a));
    std::cout << j.dump(2) << "\n";
    return kOk;
  }
  std::cout << fmt::format(
      "agent:          {} ({} / {} / {})\n"
      "spool:          {} envelope(s), {} bytes, {} quarantined\n"
      "last run:       {}\n"
      "last delivery:  {}\n"
      "next heartbeat: {}\n"
      "last error:     {}\n",
      pass::formatUuid(cfg.agentId), cfg.customer, cfg.site, cfg.name, st->spoolDepth,
      st->spoolBytes, st->quarantined, isoTime(s.lastRunMs), isoTime(s.lastDeliveryMs),
      nextDue ? isoTime(nextDue) : std::string("due at the next run"),
      s.lastError.empty() ? "none" : s.lastError);
  for (const auto& a : s.arrays) {
    std::cout << fmt::format("array:          {} {} ({}): {}{}{}, last success {}\n", a.family,
                             a.serial, a.name.empty() ? "-" : a.name, a.state,
                             a.message.empty() ? "" : ": ", a.message, isoTime(a.lastSuccessMs));
  }
  return kOk;
}

int forgetPinCommand(const pass::AgentConfig& cfg, const po::variables_map& vm) {
  if (!vm.count("array")) {
    std::cerr << "pass-agent: forget-pin needs --array SERIAL\n";
    return kConfigError;
  }
  auto forgotten = pass::forgetPins(cfg, vm["array"].as<std::string>());
  if (!forgotten) return reportError(forgotten.error());
  if (forgotten->empty()) {
    std::cout << fmt::format(
        "forget-pin: array {} has no pinned keys; the next run pins what "
        "it meets\n",
        vm["array"].as<std::string>());
  }
  for (const auto& f : *forgotten) {
    for (const auto& [name, value] : f.pins) {
      std::cout << fmt::format("forget-pin: {} {}: forgot {} {}\n", f.array.family, f.array.serial,
                               name, value);
    }
    std::cout << fmt::format("forget-pin: {} {}: the next run pins the keys it meets\n",
                             f.array.family, f.array.serial);
  }
  return kOk;
}

int dispatch(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("help,h", "show help")("command", po::value<std::string>(), "command")(
      "config", po::value<std::string>()->default_value(kDefaultConfig), "agent.xml")(
      "message", po::value<std::string>()->default_value("pass-agent test message"),
      "test message text")("json", po::bool_switch(), "machine-readable status")(
      "dry-run", po::bool_switch(), "run: collect only")(
      "family", po::value<std::string>(), "parse: array family")("source", po::value<std::string>(),
                                                                 "parse: source kind")(
      "serial", po::value<std::string>(), "parse: the array's serial for the output")(
      "array", po::value<std::string>(), "forget-pin: the array's serial")(
      "file", po::value<std::string>(), "parse: captured output");
  po::positional_options_description pos;
  pos.add("command", 1);
  pos.add("file", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pass-agent: " << e.what() << "\n";
    usage(std::cerr);
    return kConfigError;
  }
  if (vm.count("help") || !vm.count("command")) {
    usage(vm.count("help") ? std::cout : std::cerr);
    return vm.count("help") ? kOk : kConfigError;
  }
  const auto command = vm["command"].as<std::string>();
  if (command == "config-reference") {
    std::cout << pass::config::markdownReference(pass::agentSchema(), "agent.xml");
    return kOk;
  }
  if (command == "parse") return parseCommand(vm);
  if (command != "run" && command != "test" && command != "check-config" && command != "status" &&
      command != "forget-pin") {
    std::cerr << "pass-agent: unknown command '" << command << "'\n";
    usage(std::cerr);
    return kConfigError;
  }
  auto cfg = pass::loadAgentConfig(vm["config"].as<std::string>());
  if (!cfg) {
    std::cerr << "pass-agent: " << cfg.error().message << "\n";
    return kConfigError;
  }
  if (command == "run") return vm["dry-run"].as<bool>() ? dryRunCommand(*cfg) : runCommand(*cfg);
  if (command == "test") return testCommand(*cfg, vm["message"].as<std::string>());
  if (command == "check-config") return checkConfigCommand(*cfg);
  if (command == "forget-pin") return forgetPinCommand(*cfg, vm);
  return statusCommand(*cfg, vm["json"].as<bool>());
}

}  // namespace

int main(int argc, char** argv) {
  // The run's collector threads would each get a malloc arena of their own; one shared arena
  // keeps the agent's peak RSS 0.8 MiB lower on a 100-array run (docs/performance.md), and
  // the threads spend their time waiting on arrays, not on the allocator's lock.
  mallopt(M_ARENA_MAX, 1);
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "pass-agent: unexpected error: " << e.what() << "\n";
    return kFailure;
  }
}

// The agent's command line (pass-agent, pass-svp.exe). Parses with Boost.Program_options and
// calls libpass; every message goes to the streams the program passed in.

#include "pass/agent_cli.hpp"

#include <algorithm>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "pass/agent.hpp"
#include "pass/collector.hpp"
#include "pass/crypto.hpp"
#include "pass/iso_time.hpp"
#include "pass/payload.hpp"
#include "platform/fs.hpp"

namespace pass::cli {
namespace {

namespace po = boost::program_options;

std::string isoTime(std::optional<std::uint64_t> ms) {
  return ms ? isoUtc(static_cast<std::int64_t>(*ms)) : "never";
}

class Cli {
 public:
  Cli(const Program& program, std::ostream& out, std::ostream& err)
      : program_(program), out_(out), err_(err) {}

  int dispatch(const std::vector<std::string>& args);

 private:
  void usage(std::ostream& to) const;
  int reportError(const Error& e) const;
  void printArrayRun(const ArrayRun& run) const;
  int dryRun(const AgentConfig& cfg) const;
  int parse(const po::variables_map& vm) const;
  int run(const AgentConfig& cfg) const;
  int runExit(const RunSummary& summary, const AgentState& state) const;
  int test(const AgentConfig& cfg, const std::string& message) const;
  int checkConfig(const AgentConfig& cfg, bool configOnly) const;
  int status(const AgentConfig& cfg, bool json) const;
  int forgetPin(const AgentConfig& cfg, const po::variables_map& vm) const;
  const ExtraCommand* extra(const std::string& name) const;

  /// "pass-agent: " before a message.
  std::string prefix() const { return program_.name + ": "; }

  const Program& program_;
  std::ostream& out_;
  std::ostream& err_;
};

void Cli::usage(std::ostream& to) const {
  to << "usage: " << program_.name << " COMMAND [--config FILE] [options]\n\n"
     << "commands:\n"
        "  run               one scheduled cycle: collect every array, heartbeat when due,\n"
        "                    then flush the spool\n"
        "  parse             decode one captured array output and print its events\n"
        "  test              seal a test message, send it now, print the home's answer\n"
        "  check-config      validate the configuration, the key files it names and what\n"
        "                    each array needs here (password files, folders, programs)\n"
        "  status            spool depth, last delivery, next heartbeat\n"
        "  forget-pin        forget an array's pinned SSH/TLS keys (after a replacement)\n"
        "  config-reference  print the agent.xml reference (markdown)\n";
  for (const auto& c : program_.commands) to << fmt::format("  {:<17} {}\n", c.name, c.summary);
  to << "\noptions:\n"
     << fmt::format("  --config FILE     agent configuration (default {})\n",
                    program_.defaultConfig)
     << "  --message TEXT    test: the text of the test message\n"
        "  --json            status: machine-readable output\n"
        "  --dry-run         run: collect and print new events as JSON lines; send nothing\n"
        "                    to the home, advance no cursor (arrays met for the first time\n"
        "                    are pinned, as in a run)\n"
        "  --config-only     check-config: agent.xml and its key files only, not the files\n"
        "                    the arrays' settings name (for a machine that will not run\n"
        "                    the agent, e.g. an image build)\n"
        "  --array SERIAL    forget-pin: the array's serial number\n"
        "  --family F        parse: the array family (hitachi_svp, ...)\n"
        "  --source S        parse: what the file is (parse --family F lists them)\n"
        "  FILE              parse: the captured output\n";
  for (const auto& o : program_.options) {
    to << fmt::format("  {:<17} {}\n", fmt::format("--{} {}", o.name, o.valueName), o.description);
  }
  to << "\nexit codes: 0 ok, 1 runtime failure, 2 configuration error, 3 spool full,\n"
        "            4 test refused by the home, 5 test: no home reachable,\n"
        "            6 run: this host's clock disagrees with the home's (envelopes held),\n"
        "            7 run: the home refused an envelope for good (quarantined),\n"
        "            8 run: the state directory could not be written (disk full?)\n";
}

int Cli::reportError(const Error& e) const {
  err_ << prefix() << e.message << " [" << e.code << "]\n";
  if (e.code.starts_with("config.")) return kConfigError;
  if (e.code == "spool_full") return kSpoolFull;
  return kFailure;
}

void Cli::printArrayRun(const ArrayRun& run) const {
  for (const auto& note : run.notes) {
    err_ << fmt::format("{} {}: {}\n", run.array.family, run.array.serial, note);
  }
  if (run.status.state == "ok") {
    out_ << fmt::format("collect: {} {}: {} new event(s) in {} ms\n", run.array.family,
                        run.array.serial, run.events.size(), run.status.durationMs);
  } else if (run.collected) {
    // A record could not be read; it and the others were still stored.
    out_ << fmt::format("collect: {} {}: {}: {} ({} new event(s) stored)\n", run.array.family,
                        run.array.serial, run.status.state, run.status.message, run.events.size());
  } else {
    out_ << fmt::format("collect: {} {}: {}: {}\n", run.array.family, run.array.serial,
                        run.status.state, run.status.message);
  }
}

int Cli::dryRun(const AgentConfig& cfg) const {
  auto agent = Agent::open(cfg);
  if (!agent) return reportError(agent.error());
  bool allOk = true;
  for (const auto& run : agent->collectOnly()) {
    for (const auto& event : run.events) {
      out_ << payload::event(run.array, event).dump() << "\n";
    }
    for (const auto& note : run.notes) {
      err_ << fmt::format("{} {}: {}\n", run.array.family, run.array.serial, note);
    }
    err_ << fmt::format("dry-run: {} {}: {}{}{}, {} new event(s)\n", run.array.family,
                        run.array.serial, run.status.state, run.status.message.empty() ? "" : ": ",
                        run.status.message, run.events.size());
    allOk = allOk && run.status.state == "ok";
  }
  return allOk ? kOk : kFailure;
}

int Cli::parse(const po::variables_map& vm) const {
  const auto& registry = builtinCollectors();
  auto families = [&registry] {
    std::string list;
    for (const auto& c : registry.all())
      list += fmt::format("{}{}", list.empty() ? "" : ", ", c.family);
    return list;
  };
  if (!vm.count("family")) {
    err_ << prefix() << "parse needs --family (one of: " << families() << ")\n";
    return kConfigError;
  }
  const auto family = vm["family"].as<std::string>();
  const CollectorInfo* info = registry.find(family);
  if (info == nullptr) {
    err_ << prefix()
         << fmt::format("unknown family '{}' (this build has: {})\n", family, families());
    return kConfigError;
  }
  std::string sources;
  for (const auto& src : info->sources) {
    sources += fmt::format("\n  {:<12} {}", src.name, src.description);
  }
  if (!vm.count("source") || !vm.count("file")) {
    err_ << prefix()
         << fmt::format("parse needs --source S and FILE; sources of {}:{}\n", family, sources);
    return kConfigError;
  }
  const auto sourceName = vm["source"].as<std::string>();
  auto source = std::find_if(info->sources.begin(), info->sources.end(),
                             [&](const ParseSource& src) { return src.name == sourceName; });
  if (source == info->sources.end()) {
    err_ << prefix()
         << fmt::format("{} has no source '{}'; its sources:{}\n", family, sourceName, sources);
    return kConfigError;
  }
  const auto file = vm["file"].as<std::string>();
  auto text = platform::readFile(platform::pathFromUtf8(file));
  if (!text) {
    err_ << prefix() << text.error().message << "\n";
    return kFailure;
  }
  ArrayConfig array;
  array.family = family;
  array.serial = vm.count("serial") ? vm["serial"].as<std::string>() : "-";
  array.where = file;
  auto events = source->parse(*text, array);
  if (!events) {
    err_ << prefix()
         << fmt::format("{}: {} [{}]\n", file, events.error().message, events.error().code);
    return kFailure;
  }
  for (const auto& event : *events) out_ << payload::event(array, event).dump() << "\n";
  err_ << fmt::format("parse: {} event(s) from {}\n", events->size(), file);
  return kOk;
}

int Cli::run(const AgentConfig& cfg) const {
  auto agent = Agent::open(cfg);
  if (!agent) return reportError(agent.error());
  auto summary = agent->run();
  if (!summary) return reportError(summary.error());
  if (program_.afterRun) program_.afterRun(*summary);
  for (const auto& array : summary->arrays) printArrayRun(array);
  out_ << fmt::format(
      "run: heartbeat {}, delivered {}, duplicates {}, quarantined {}, held for the clock {}, "
      "sealed again {}, still spooled {}\n",
      summary->heartbeatSpooled ? "spooled" : "not due", summary->delivered, summary->duplicates,
      summary->quarantined, summary->held, summary->resealed, summary->remaining);
  if (!summary->homeKeyNote.empty()) out_ << "run: " << summary->homeKeyNote << "\n";
  if (summary->stoppedBy) {
    out_ << fmt::format("run: home not reachable, will retry next run: {} ({}): {}\n",
                        summary->stoppedBy->endpoint, summary->stoppedBy->errorCode,
                        summary->stoppedBy->detail);
  }
  if (const auto& renewed = summary->renewedCertificate) {
    out_ << fmt::format("run: TLS certificate renewed: serial {}, valid until {}, in {}\n",
                        renewed->serialHex, isoUtc(renewed->notAfterMs),
                        platform::displayPath(renewed->certFile));
  }
  if (const auto& failed = summary->renewalError) {
    const auto& current = agent->tlsIdentity();
    err_ << prefix()
         << fmt::format(
                "the TLS certificate is due for renewal but could not be renewed: {} "
                "[{}]; the current one (valid until {}) stays in use and the next run "
                "tries again\n",
                failed->message, failed->code, isoUtc(current.notAfterMs));
  }
  if (!agent->tlsIdentity().ignoredRenewal.empty()) {
    err_ << prefix() << agent->tlsIdentity().ignoredRenewal << "\n";
  }
  return runExit(*summary, agent->state());
}

int Cli::runExit(const RunSummary& summary, const AgentState& state) const {
  // Every problem is said; the exit code names the one that loses most if left alone.
  int code = kOk;
  auto raise = [&code](int c) {
    if (code == kOk) code = c;
  };
  if (summary.storageError) {
    err_ << prefix()
         << fmt::format(
                "could not store new envelopes or state: {} [{}]; what was spooled "
                "before was still sent, and events not stored are collected again "
                "next run\n",
                summary.storageError->message, summary.storageError->code);
    raise(kStorageFailed);
  }
  if (summary.spoolRefusal) raise(reportError(*summary.spoolRefusal));
  if (summary.stillHeld > 0 || (summary.clockRefusal && !summary.clockConfirmed)) {
    err_ << prefix()
         << fmt::format(
                "{}; {} envelope(s) are held in spool/held/ and are sealed again and "
                "sent once the clocks agree: set this host's clock right (NTP)\n",
                state.clockError.empty() ? "this host's clock disagreed with the home's"
                                         : state.clockError,
                summary.stillHeld);
    raise(kClockDisagrees);
  } else if (summary.clockRefusal) {
    err_ << prefix()
         << fmt::format(
                "the home refused {} envelope(s) as {} ({}); the clocks agree now, so "
                "{} were sealed again and sent\n",
                summary.held, summary.clockRefusal->errorCode, summary.clockRefusal->detail,
                summary.resealed);
  } else if (summary.resealed > 0) {
    err_ << prefix()
         << fmt::format("the clocks agree again: {} held envelope(s) were sealed again\n",
                        summary.resealed);
  }
  if (summary.quarantined > 0) {
    err_ << prefix()
         << fmt::format(
                "the home refused {} envelope(s) for good; they are in spool/quarantine/ "
                "with the home's answer and counted in every heartbeat (see status)\n",
                summary.quarantined);
    raise(kQuarantined);
  }
  return code;
}

int Cli::test(const AgentConfig& cfg, const std::string& message) const {
  auto agent = Agent::open(cfg);
  if (!agent) return reportError(agent.error());
  auto answer = agent->sendTest(message);
  if (!answer) return reportError(answer.error());
  out_ << fmt::format("test: {} by {} (HTTP {})\n", toString(answer->delivery), answer->endpoint,
                      answer->httpStatus);
  if (!answer->body.empty()) out_ << "home answered: " << answer->body << "\n";
  if (!answer->detail.empty()) out_ << "detail: " << answer->detail << "\n";
  switch (answer->delivery) {
    case Delivery::kAccepted:
    case Delivery::kDuplicate:
      return kOk;
    case Delivery::kRefused:
      return kTestRefused;
    case Delivery::kRetry:
      return kTestUnreachable;
  }
  return kFailure;
}

int Cli::checkConfig(const AgentConfig& cfg, bool configOnly) const {
  for (const auto& [what, path] :
       {std::pair{"agent-sign.key", cfg.signKey}, std::pair{"agent-tls.key", cfg.tlsKey},
        std::pair{"agent-tls.crt", cfg.tlsCert}, std::pair{"home-ca.crt", cfg.homeCa},
        std::pair{"home-hpke.pub", cfg.homeHpke}}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      err_ << prefix()
           << fmt::format("{}: {} file {} is missing\n", platform::displayPath(cfg.file), what,
                          platform::displayPath(path));
      return kConfigError;
    }
    // Read as this user, as a run will: a key the agent's user may not read fails here.
    if (auto text = platform::readFile(path); !text) {
      err_ << prefix()
           << fmt::format("{}: {} file: {}\n", platform::displayPath(cfg.file), what,
                          text.error().message);
      return kConfigError;
    }
  }
  if (auto k = Ed25519Key::loadPem(cfg.signKey.string()); !k || !k->hasPrivate()) {
    err_ << prefix()
         << (k ? platform::displayPath(cfg.signKey) + " holds no private key" : k.error().message)
         << "\n";
    return kConfigError;
  }
  if (auto k = X25519Key::loadPem(cfg.homeHpke.string()); !k) {
    err_ << prefix() << k.error().message << "\n";
    return kConfigError;
  }
  // Every array is checked, so that one pass lists everything left to fix.
  std::size_t problems = 0;
  for (const auto& array : cfg.arrays) {
    // Building the collector checks the array's own settings (profiles, bounds, ...).
    auto collector = createCollector(array);
    if (!collector) {
      err_ << prefix() << collector.error().message << "\n";
      ++problems;
      continue;
    }
    if (configOnly) continue;
    for (const auto& problem : (*collector)->checkPrerequisites()) {
      err_ << prefix() << problem.message << "\n";
      ++problems;
    }
  }
  if (problems > 0) {
    err_ << prefix()
         << fmt::format("{}: {} problem(s) with the arrays' settings\n",
                        platform::displayPath(cfg.file), problems);
    return kConfigError;
  }
  out_ << fmt::format("{}: ok (agent {}, customer {}, site {}, {} endpoint(s), {} array(s)){}\n",
                      platform::displayPath(cfg.file), formatUuid(cfg.agentId), cfg.customer,
                      cfg.site, cfg.endpoints.size(), cfg.arrays.size(),
                      configOnly ? "; the arrays' files were not checked (--config-only)" : "");
  return kOk;
}

int Cli::status(const AgentConfig& cfg, bool json) const {
  auto st = readStatus(cfg);
  if (!st) return reportError(st.error());
  auto optMs = [](const std::optional<std::uint64_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  const auto& s = st->state;
  std::optional<std::uint64_t> nextDue;
  if (s.nextHeartbeatDueMs) nextDue = s.nextHeartbeatDueMs;
  if (json) {
    nlohmann::json j = {
        {"agent", formatUuid(cfg.agentId)},
        {"spool_depth", st->spoolDepth},
        {"spool_bytes", st->spoolBytes},
        {"quarantined", st->quarantined},
        {"last_run_ms", optMs(s.lastRunMs)},
        {"last_delivery_ms", optMs(s.lastDeliveryMs)},
        {"next_heartbeat_due_ms", optMs(nextDue)},
        {"last_error", s.lastError},
        {"dropped_heartbeats", s.droppedHeartbeats},
        {"refused_envelopes", s.refusedEnvelopes},
        {"held_for_clock", st->held},
        {"clock_error", s.clockError},
        {"clock_skew_ms", s.clockSkewMs ? nlohmann::json(*s.clockSkewMs) : nlohmann::json(nullptr)},
        {"storage_error", s.storageError},
        {"storage_error_ms", optMs(s.storageErrorMs)},
        {"arrays", nlohmann::json::array()}};
    for (const auto& a : s.arrays) j["arrays"].push_back(payload::arrayStatus(a));
    out_ << j.dump(2) << "\n";
    return kOk;
  }
  // An array that could not be collected is an error of the run too: "none" would hide it.
  std::string lastError = s.lastError;
  std::size_t failing = 0;
  for (const auto& a : s.arrays) {
    if (a.state == "ok") continue;
    if (++failing == 1 && lastError.empty()) {
      lastError = fmt::format("{} {}: {}{}{}", a.family, a.serial, a.state,
                              a.message.empty() ? "" : ": ", a.message);
    }
  }
  if (failing > 1 && s.lastError.empty()) {
    lastError += fmt::format(" (and {} more array(s), below)", failing - 1);
  }
  out_ << fmt::format(
      "agent:          {} ({} / {} / {})\n"
      "spool:          {} envelope(s), {} bytes, {} quarantined, {} held for the clock\n"
      "last run:       {}\n"
      "last delivery:  {}\n"
      "next heartbeat: {}\n"
      "last error:     {}\n"
      "clock:          {}\n"
      "storage:        {}\n",
      formatUuid(cfg.agentId), cfg.customer, cfg.site, cfg.name, st->spoolDepth, st->spoolBytes,
      st->quarantined, st->held, isoTime(s.lastRunMs), isoTime(s.lastDeliveryMs),
      nextDue ? isoTime(nextDue) : std::string("due at the next run"),
      lastError.empty() ? "none" : lastError,
      s.clockError.empty() ? "no disagreement with the home's" : s.clockError,
      s.storageError.empty()
          ? "ok"
          : fmt::format("{} (at {})", s.storageError, isoTime(s.storageErrorMs)));
  if (st->quarantined > 0) {
    out_ << fmt::format(
        "quarantine:     {} envelope(s) the home refused for good, in {}; the reasons are in "
        "the .reason files beside them\n",
        st->quarantined, platform::displayPath(cfg.stateDir / "spool" / "quarantine"));
  }
  for (const auto& a : s.arrays) {
    out_ << fmt::format("array:          {} {} ({}): {}{}{}, last success {}\n", a.family, a.serial,
                        a.name.empty() ? "-" : a.name, a.state, a.message.empty() ? "" : ": ",
                        a.message, isoTime(a.lastSuccessMs));
  }
  return kOk;
}

int Cli::forgetPin(const AgentConfig& cfg, const po::variables_map& vm) const {
  if (!vm.count("array")) {
    err_ << prefix() << "forget-pin needs --array SERIAL\n";
    return kConfigError;
  }
  const auto serial = vm["array"].as<std::string>();
  auto forgotten = forgetPins(cfg, serial);
  if (!forgotten) return reportError(forgotten.error());
  if (forgotten->empty()) {
    out_ << fmt::format(
        "forget-pin: array {} has no pinned keys; the next run pins what it meets\n", serial);
  }
  for (const auto& f : *forgotten) {
    for (const auto& [name, value] : f.pins) {
      out_ << fmt::format("forget-pin: {} {}: forgot {} {}\n", f.array.family, f.array.serial, name,
                          value);
    }
    out_ << fmt::format("forget-pin: {} {}: the next run pins the keys it meets\n", f.array.family,
                        f.array.serial);
  }
  return kOk;
}

const ExtraCommand* Cli::extra(const std::string& name) const {
  auto it = std::find_if(program_.commands.begin(), program_.commands.end(),
                         [&](const ExtraCommand& c) { return c.name == name; });
  return it == program_.commands.end() ? nullptr : &*it;
}

int Cli::dispatch(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("help,h", "show help")("command", po::value<std::string>(), "command")(
      "config", po::value<std::string>()->default_value(program_.defaultConfig), "agent.xml")(
      "message", po::value<std::string>()->default_value(program_.name + " test message"),
      "test message text")("json", po::bool_switch(), "machine-readable status")(
      "dry-run", po::bool_switch(), "run: collect only")("config-only", po::bool_switch(),
                                                         "check-config: not the arrays' files")(
      "family", po::value<std::string>(), "parse: array family")("source", po::value<std::string>(),
                                                                 "parse: source kind")(
      "serial", po::value<std::string>(), "parse: the array's serial for the output")(
      "array", po::value<std::string>(), "forget-pin: the array's serial")(
      "file", po::value<std::string>(), "parse: captured output");
  for (const auto& o : program_.options) {
    opts.add_options()(o.name.c_str(), po::value<std::string>(), o.description.c_str());
  }
  po::positional_options_description pos;
  pos.add("command", 1);
  pos.add("file", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    err_ << prefix() << e.what() << "\n";
    usage(err_);
    return kConfigError;
  }
  if (vm.count("help") || !vm.count("command")) {
    usage(vm.count("help") ? out_ : err_);
    return vm.count("help") ? kOk : kConfigError;
  }
  const auto command = vm["command"].as<std::string>();
  if (command == "config-reference") {
    out_ << config::markdownReference(agentSchema(), "agent.xml");
    return kOk;
  }
  if (command == "parse") return parse(vm);
  const ExtraCommand* own = extra(command);
  if (own == nullptr && command != "run" && command != "test" && command != "check-config" &&
      command != "status" && command != "forget-pin") {
    err_ << prefix() << "unknown command '" << command << "'\n";
    usage(err_);
    return kConfigError;
  }
  const auto configPath = vm["config"].as<std::string>();
  std::optional<AgentConfig> cfg;
  if (own == nullptr || own->needsConfig) {
    auto loaded = loadAgentConfig(platform::pathFromUtf8(configPath));
    if (!loaded) {
      err_ << prefix() << loaded.error().message << "\n";
      return kConfigError;
    }
    cfg = std::move(*loaded);
  }
  if (own != nullptr) {
    ExtraArgs extraArgs{.options = {}, .config = cfg ? &*cfg : nullptr, .configPath = configPath};
    for (const auto& o : program_.options) {
      if (vm.count(o.name)) extraArgs.options[o.name] = vm[o.name].as<std::string>();
    }
    return own->run(extraArgs);
  }
  if (command == "run") return vm["dry-run"].as<bool>() ? dryRun(*cfg) : run(*cfg);
  if (command == "test") return test(*cfg, vm["message"].as<std::string>());
  if (command == "check-config") return checkConfig(*cfg, vm["config-only"].as<bool>());
  if (command == "forget-pin") return forgetPin(*cfg, vm);
  return status(*cfg, vm["json"].as<bool>());
}

}  // namespace

int agentMain(const Program& program, const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err) {
  try {
    return Cli(program, out, err).dispatch(args);
  } catch (const std::exception& e) {
    err << program.name << ": unexpected error: " << e.what() << "\n";
    return kFailure;
  }
}

}  // namespace pass::cli

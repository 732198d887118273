// pass-home: parses the command line and calls the home library (pass_home).
// Exit codes: 0 ok, 1 runtime failure, 2 usage or bad input.

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "pass/config.hpp"
#include "pass/home/admin.hpp"
#include "pass/home/admin_api.hpp"
#include "pass/home/cluster_keys.hpp"
#include "pass/home/home_config.hpp"
#include "pass/home/hpke_keys.hpp"
#include "pass/home/log.hpp"
#include "pass/home/onboard.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/prune.hpp"
#include "pass/home/runtime.hpp"
#include "pass/home/server.hpp"
#include "pass/home/state_store.hpp"
#include "pass/home/ticket_admin.hpp"

namespace po = boost::program_options;
using namespace pass;
using namespace pass::home;

namespace {

constexpr int kOk = 0;
constexpr int kUsage = 2;

constexpr const char* kUsageText = R"(usage: pass-home COMMAND [options]

commands:
  init      create the home's state: CA, server certificate, HPKE key pair, database
            (SQLite in STATE/home.db, or --database postgresql://... for several homes);
            --join EXISTING_STATE adds a home to a cluster with a copy of a home's keys
  enroll    enroll an agent and write its bundle
  onboard   turn a new-customer form into agents, bundles and the appliance's inputs
  serve     run the HTTPS ingest server
  migrate   copy an SQLite home's store into an empty PostgreSQL database (--to URL)
  agents    list agents with their last heartbeat and last seq
  revoke    refuse an agent from now on
  rotate-hpke-key  make a new HPKE key for agents to seal to; retired keys go after 31 days
                   (on a cluster: copy the key files to every other home, docs/scale-out.md)
  hpke-keys        list the home's HPKE keys: current, retired, when each is deleted
  messages  list stored envelopes
  events    list stored events (the alerts the agents collected)
  tickets   list|show|ack|resolve|reopen service tickets
  silence   add|list|remove maintenance windows (silenced alerts notify nobody)
  notify-test  send a test message through a channel of home.xml
  watchdog  run one watchdog pass (missing heartbeats, escalations) and exit
  prune     prune envelopes and events older than home.xml's <retention> once, and say what
  check-config  validate STATE/home.xml (rules, contacts, channels, schedules)
  config-reference  print the home.xml reference (docs/home-configuration.md)
  form-reference    print the new-customer form's reference (docs/onboarding.md)

'pass-home COMMAND --help' describes a command's options.
exit codes: 0 ok, 1 runtime failure, 2 usage or bad input
)";

struct UsageError {
  std::string message;
};

// Parses `args` against `desc` (and `positional`); nullopt after printing --help, headed by
// `usage` when given.
std::optional<po::variables_map> parse(const std::string& command,
                                       const std::vector<std::string>& args,
                                       po::options_description& desc,
                                       const po::positional_options_description& positional = {},
                                       const char* usage = nullptr) {
  desc.add_options()("help,h", "show this help");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
  } catch (const po::error& e) {
    throw UsageError{e.what()};
  }
  if (vm.count("help")) {
    if (usage) {
      std::cout << usage << desc;
    } else {
      std::cout << "usage: pass-home " << command << " [options]\n" << desc;
    }
    return std::nullopt;
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError{e.what()};
  }
  return vm;
}

int report(const std::string& command, const Error& error) {
  std::cerr << "pass-home " << command << ": " << error.message << "\n";
  return exitCodeFor(error);
}

int cmdInit(const std::vector<std::string>& args) {
  InitOptions options;
  std::string state;
  std::string passwordFile;
  std::string join;
  po::options_description desc("pass-home init");
  desc.add_options()("state", po::value(&state)->required(), "state directory to create")(
      "join", po::value(&join),
      "add a home to a cluster: copy the keys, secrets and database.xml of EXISTING_STATE (a "
      "running home's state directory, copied to this machine) and check them against the "
      "database (docs/scale-out.md); takes no other option")(
      "name", po::value(&options.names)->composing(),
      "server certificate name (DNS name or IP address), repeatable; "
      "default: localhost and 127.0.0.1")(
      "database", po::value(&options.database.postgresUrl),
      "keep the store in PostgreSQL: postgresql://user@host:port/database (no password in "
      "it); recorded in STATE/database.xml. Default: SQLite in STATE/home.db")(
      "database-password-file", po::value(&passwordFile),
      "the database password's file (its first line); copied to STATE/database-password "
      "(0600)");
  auto vm = parse("init", args, desc);
  if (!vm) return kOk;
  if (!join.empty()) {
    if (!options.names.empty() || !options.database.postgresUrl.empty() || !passwordFile.empty()) {
      throw UsageError{
          "--join copies the server certificate and database.xml: give no --name, "
          "--database or --database-password-file with it"};
    }
    if (auto done = joinCluster(StatePaths(state), StatePaths(join)); !done) {
      return report("init", done.error());
    }
    std::cout << "joined " << state << " to the cluster of " << join
              << ": its keys match the database's\n";
    return kOk;
  }
  if (options.database.postgresUrl.empty() && !passwordFile.empty()) {
    throw UsageError{"--database-password-file needs --database"};
  }
  options.state = state;
  options.database.passwordFile = passwordFile;
  if (auto done = initState(options); !done) return report("init", done.error());
  std::cout << "initialized " << state << "\n";
  return kOk;
}

int cmdMigrate(const std::vector<std::string>& args) {
  std::string state;
  std::string passwordFile;
  StoreLocation target;
  po::options_description desc("pass-home migrate");
  desc.add_options()("state", po::value(&state)->required(),
                     "state directory of an SQLite home (stop its serve first)")(
      "to", po::value(&target.postgresUrl)->required(),
      "the empty PostgreSQL database: postgresql://user@host:port/database (no password in it)")(
      "password-file", po::value(&passwordFile),
      "the database password's file (its first line); copied to STATE/database-password (0600)");
  auto vm = parse("migrate", args, desc);
  if (!vm) return kOk;
  target.passwordFile = passwordFile;
  auto copied = migrateToPostgres(StatePaths(state), target);
  if (!copied) return report("migrate", copied.error());
  std::cout << fmt::format("copied {}/home.db into {}, rows per table:\n", state,
                           target.postgresUrl);
  for (const auto& table : *copied) std::cout << fmt::format("{:<16} {}\n", table.name, table.rows);
  std::cout << fmt::format(
      "{}/database.xml names it now: serve uses PostgreSQL; home.db is kept "
      "as it was\n",
      state);
  return kOk;
}

int cmdEnroll(const std::vector<std::string>& args) {
  EnrollOptions options;
  std::string state;
  std::string out;
  po::options_description desc("pass-home enroll");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "customer", po::value(&options.customer)->required(), "customer name")(
      "site", po::value(&options.site)->required(), "site name")(
      "agent", po::value(&options.name)->required(), "agent name (e.g. the array it watches)")(
      "out", po::value(&out)->required(), "bundle directory to create (must be new or empty)")(
      "endpoint", po::value(&options.endpoints)->composing(),
      "home URL written into agent.xml, repeatable, in order of preference; "
      "default: https://localhost:9455")(
      "test-cert-seconds", po::value<long>(),
      "FOR TESTS ONLY: the agent certificate is valid for this many seconds instead of 5 years");
  auto vm = parse("enroll", args, desc);
  if (!vm) return kOk;
  options.out = out;
  if (vm->count("test-cert-seconds"))
    options.testCertSeconds = (*vm)["test-cert-seconds"].as<long>();
  auto agent = enrollAgent(state, options);
  if (!agent) return report("enroll", agent.error());
  std::cout << agent->uuid << "\n";
  return kOk;
}

int cmdServe(const std::vector<std::string>& args) {
  RuntimeOptions runtime;
  ServerOptions& options = runtime.ingest;
  std::string state;
  std::string listen = "0.0.0.0:9455";
  std::string portFile;
  std::string logLevel = "info";
  unsigned readTimeout = 30;
  unsigned idleTimeout = 60;
  unsigned handshakeTimeout = 5;
  unsigned lingerUs = static_cast<unsigned>(options.commitLinger.count());
  std::string adminListen(kDefaultAdminListen);
  std::string adminPortFile;
  po::options_description desc("pass-home serve");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "listen", po::value(&listen)->default_value(listen), "HOST:PORT to listen on; port 0 = any")(
      "port-file", po::value(&portFile), "write the bound port to this file once listening")(
      "threads", po::value(&options.threads)->default_value(options.threads), "I/O threads")(
      "max-body", po::value(&options.maxBody)->default_value(options.maxBody),
      "largest request body in bytes (larger: 413)")(
      "max-connections", po::value(&options.maxConnections)->default_value(options.maxConnections),
      "agents' connections beyond this are closed at once")(
      "max-handshakes", po::value(&options.maxHandshakes)->default_value(options.maxHandshakes),
      "connections still in their TLS handshake, in total (not counted in --max-connections)")(
      "max-handshakes-per-address",
      po::value(&options.maxHandshakesPerAddress)->default_value(options.maxHandshakesPerAddress),
      "connections still in their TLS handshake from one IP address (IPv6: one /64)")(
      "handshake-timeout", po::value(&handshakeTimeout)->default_value(handshakeTimeout),
      "seconds for a new connection's TLS handshake")(
      "read-timeout", po::value(&readTimeout)->default_value(readTimeout),
      "seconds for a request's header and body, and for an answer")(
      "idle-timeout", po::value(&idleTimeout)->default_value(idleTimeout),
      "seconds a keep-alive connection may wait for its next request")(
      "max-batch", po::value(&options.maxBatch)->default_value(options.maxBatch),
      "most envelopes in one commit")(
      "commit-linger-us", po::value(&lingerUs)->default_value(lingerUs),
      "microseconds a commit may wait for more envelopes while many arrive at once; 0 = never")(
      "log-level", po::value(&logLevel)->default_value(logLevel),
      "debug, info, warning or error; debug logs every accepted envelope")(
      "no-tickets",
      "store envelopes only: no tickets, notifications or watchdog (for "
      "measuring ingest alone)")(
      "admin-listen", po::value(&adminListen)->default_value(adminListen),
      "HOST:PORT of the JSON admin API and the acknowledgement links (docs/admin-api.md); "
      "off = none. Any address but loopback is served with TLS (STATE/server.crt)")(
      "admin-port-file", po::value(&adminPortFile),
      "write the admin API's bound port to this file once listening");
  auto vm = parse("serve", args, desc);
  if (!vm) return kOk;
  auto level = parseLogLevel(logLevel);
  if (!level) return report("serve", level.error());
  if (auto parsed = parseListen(listen, options); !parsed) return report("serve", parsed.error());
  if (adminListen != "off") {
    auto& admin = runtime.admin.emplace();
    if (auto parsed = parseAdminListen(adminListen, admin); !parsed) {
      return report("serve", parsed.error());
    }
    admin.portFile = adminPortFile;
  }
  if (options.threads == 0 || options.maxConnections == 0 || options.maxBody == 0 ||
      options.maxBatch == 0 || options.maxHandshakes == 0 || options.maxHandshakesPerAddress == 0 ||
      readTimeout == 0 || idleTimeout == 0 || handshakeTimeout == 0) {
    return report("serve", Error{"usage",
                                 "--threads, --max-body, --max-connections, --max-handshakes, "
                                 "--max-handshakes-per-address, --max-batch "
                                 "and the timeouts must be greater than 0"});
  }
  options.state = state;
  options.portFile = portFile;
  options.readTimeout = std::chrono::seconds(readTimeout);
  options.idleTimeout = std::chrono::seconds(idleTimeout);
  options.handshakeTimeout = std::chrono::seconds(handshakeTimeout);
  options.commitLinger = std::chrono::microseconds(lingerUs);
  runtime.tickets = vm->count("no-tickets") == 0;
  Logger log(*level);
  auto home = Runtime::create(std::move(runtime), log);
  if (!home) return report("serve", home.error());
  if (auto ran = (*home)->run(/*handleSignals=*/true); !ran) return report("serve", ran.error());
  return kOk;
}

int cmdAgents(const std::vector<std::string>& args) {
  std::string state;
  po::options_description desc("pass-home agents");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "json", "print a JSON array");
  auto vm = parse("agents", args, desc);
  if (!vm) return kOk;
  auto text = listAgents(state, vm->count("json") > 0);
  if (!text) return report("agents", text.error());
  std::cout << *text;
  return kOk;
}

int cmdRevoke(const std::vector<std::string>& args) {
  std::string state;
  std::string agent;
  po::options_description desc("pass-home revoke");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "agent", po::value(&agent)->required(), "agent UUID");
  auto vm = parse("revoke", args, desc);
  if (!vm) return kOk;
  if (auto done = revokeAgent(state, agent); !done) return report("revoke", done.error());
  std::cout << "revoked " << agent << "\n";
  return kOk;
}

int cmdMessages(const std::vector<std::string>& args) {
  std::string state;
  std::string agent;
  po::options_description desc("pass-home messages");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "agent", po::value(&agent), "only this agent's envelopes (UUID)")("json",
                                                                        "print a JSON array");
  auto vm = parse("messages", args, desc);
  if (!vm) return kOk;
  std::optional<std::string> only;
  if (vm->count("agent")) only = agent;
  auto text = listMessages(state, only, vm->count("json") > 0);
  if (!text) return report("messages", text.error());
  std::cout << *text;
  return kOk;
}

int cmdEvents(const std::vector<std::string>& args) {
  std::string state;
  std::string array;
  po::options_description desc("pass-home events");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "array", po::value(&array), "only this array's events (serial)")("json",
                                                                       "print a JSON array");
  auto vm = parse("events", args, desc);
  if (!vm) return kOk;
  std::optional<std::string> only;
  if (vm->count("array")) only = array;
  auto text = listEvents(state, only, vm->count("json") > 0);
  if (!text) return report("events", text.error());
  std::cout << *text;
  return kOk;
}

std::string defaultWho() {
  const char* user = std::getenv("USER");
  return user && *user ? fmt::format("{} (cli)", user) : std::string("operator (cli)");
}

/// --now for the commands that act at a time: tests and replays give it, people do not.
Result<std::int64_t> nowFrom(const po::variables_map& vm, const std::string& text) {
  if (!vm.count("now")) return wallClockMs();
  return parseTime(text, wallClockMs());
}

int printOr(const std::string& command, const Result<std::string>& text) {
  if (!text) return report(command, text.error());
  std::cout << *text;
  return kOk;
}

int cmdTickets(std::vector<std::string> args) {
  const char* usage =
      "usage: pass-home tickets list [--all] [--customer C] [--array SERIAL] [--json]\n"
      "       pass-home tickets show ID [--json]\n"
      "       pass-home tickets ack|resolve|reopen ID [--by NAME] [--note TEXT]\n"
      "all take --state DIR\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return args.empty() ? kUsage : kOk;
  }
  std::string verb = args[0];
  args.erase(args.begin());
  std::string command = "tickets " + verb;
  std::string state, customer, array, by = defaultWho(), note, now;
  std::int64_t id = 0;
  po::options_description desc("pass-home " + command);
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "json", "print JSON")("now", po::value(&now), "act as if it were this time (UTC)");
  po::positional_options_description positional;
  if (verb == "list") {
    desc.add_options()("all", "also resolved tickets")("customer", po::value(&customer),
                                                       "only this customer's tickets")(
        "array", po::value(&array), "only this array's tickets (serial)");
  } else if (verb == "show" || verb == "ack" || verb == "resolve" || verb == "reopen") {
    desc.add_options()("id", po::value(&id)->required(), "ticket number");
    positional.add("id", 1);
    if (verb != "show") {
      desc.add_options()("by", po::value(&by)->default_value(by), "who does it (audit trail)")(
          "note", po::value(&note), "why, for the audit trail");
    }
  } else {
    std::cerr << "pass-home tickets: unknown action '" << verb << "'\n" << usage;
    return kUsage;
  }
  auto parsed = parse(command, args, desc, positional, usage);
  if (!parsed) return kOk;
  const po::variables_map& vm = *parsed;
  bool json = vm.count("json") > 0;
  if (verb == "list") {
    TicketFilter filter;
    filter.liveOnly = vm.count("all") == 0;
    if (vm.count("customer")) filter.customer = customer;
    if (vm.count("array")) filter.array = array;
    return printOr(command, listTickets(state, filter, json));
  }
  if (verb == "show") return printOr(command, showTicket(state, id, json));
  auto at = nowFrom(vm, now);
  if (!at) return report(command, at.error());
  TicketAction action = verb == "ack"       ? TicketAction::kAcknowledge
                        : verb == "resolve" ? TicketAction::kResolve
                                            : TicketAction::kReopen;
  return printOr(command, changeTicket(state, id, action, by, note, *at));
}

int cmdSilence(std::vector<std::string> args) {
  const char* usage =
      "usage: pass-home silence add [--customer C] [--site S] [--array SERIAL] [--code CODE]\n"
      "                             --until TIME [--from TIME] --reason TEXT [--by NAME]\n"
      "       pass-home silence list [--all] [--json]\n"
      "       pass-home silence remove ID [--by NAME]\n"
      "all take --state DIR; TIME is 2026-11-28T22:00:00Z, \"2026-11-28 22:00\" (UTC), now,\n"
      "or +30m, +2h, +1d\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return args.empty() ? kUsage : kOk;
  }
  std::string verb = args[0];
  args.erase(args.begin());
  std::string command = "silence " + verb;
  std::string state, now, by = defaultWho();
  SilenceRow silence;
  std::string from = "now", until;
  std::int64_t id = 0;
  po::options_description desc("pass-home " + command);
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "now", po::value(&now), "act as if it were this time (UTC)");
  po::positional_options_description positional;
  if (verb == "add") {
    desc.add_options()("customer", po::value(&silence.customer), "only this customer")(
        "site", po::value(&silence.site), "only this site")("array", po::value(&silence.array),
                                                            "only this array (serial)")(
        "code", po::value(&silence.code), "only this vendor code")(
        "from", po::value(&from)->default_value(from), "start")(
        "until", po::value(&until)->required(), "end")(
        "reason", po::value(&silence.reason)->required(), "why (shown on the tickets)")(
        "by", po::value(&by)->default_value(by), "who");
  } else if (verb == "list") {
    desc.add_options()("all", "also ended and removed silences")("json", "print JSON");
  } else if (verb == "remove") {
    desc.add_options()("id", po::value(&id)->required(), "silence number")(
        "by", po::value(&by)->default_value(by), "who");
    positional.add("id", 1);
  } else {
    std::cerr << "pass-home silence: unknown action '" << verb << "'\n" << usage;
    return kUsage;
  }
  auto parsed = parse(command, args, desc, positional, usage);
  if (!parsed) return kOk;
  const po::variables_map& vm = *parsed;
  auto at = nowFrom(vm, now);
  if (!at) return report(command, at.error());
  if (verb == "list")
    return printOr(command, listSilences(state, *at, vm.count("all") > 0, vm.count("json") > 0));
  if (verb == "remove") return printOr(command, removeSilence(state, id, by, *at));
  auto starts = parseTime(from, *at);
  if (!starts) return report(command, starts.error());
  auto ends = parseTime(until, *at);
  if (!ends) return report(command, ends.error());
  silence.startsMs = *starts;
  silence.endsMs = *ends;
  silence.author = by;
  silence.createdMs = *at;
  return printOr(command, addSilence(state, silence));
}

int cmdOnboard(const std::vector<std::string>& args) {
  OnboardOptions options;
  std::string state, form, out, now;
  po::options_description desc("pass-home onboard");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "form", po::value(&form)->required(),
      "the new-customer form (docs/onboarding.md; example: docs/examples/new-customer-form.xml)")(
      "out", po::value(&out)->required(),
      "folder for the bundles and the appliance's inputs; give the same one on every run for "
      "this customer site")(
      "endpoint", po::value(&options.endpoints)->composing(),
      "home URL for the agents, repeatable, in order of preference; default: what the "
      "bundles of an earlier run say, else https://localhost:9455")(
      "now", po::value(&now), "act as if it were this time (UTC)");
  auto vm = parse("onboard", args, desc);
  if (!vm) return kOk;
  auto at = nowFrom(*vm, now);
  if (!at) return report("onboard", at.error());
  options.state = state;
  options.form = form;
  options.out = out;
  options.nowMs = *at;
  auto done = onboard(options);
  if (!done) return report("onboard", done.error());
  for (const auto& agent : done->agents) {
    std::cout << fmt::format("{} {} {} ({} array(s)) -> {}\n",
                             agent.enrolled ? "enrolled" : "updated ", agent.name, agent.uuid,
                             agent.arrays, agent.bundle.string());
  }
  for (const auto& note : done->notes) std::cout << "note: " << note << "\n";
  return kOk;
}

int cmdNotifyTest(const std::vector<std::string>& args) {
  std::string state, to;
  po::options_description desc("pass-home notify-test");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "to", po::value(&to)->required(),
      "you@example.com, sms:+4915112345678, email-sms:ADDR or webhook:NAME");
  auto vm = parse("notify-test", args, desc);
  if (!vm) return kOk;
  return printOr("notify-test", notifyTest(state, to, wallClockMs()));
}

int cmdWatchdog(const std::vector<std::string>& args) {
  std::string state, now;
  po::options_description desc("pass-home watchdog");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "now", po::value(&now), "act as if it were this time (UTC)");
  auto vm = parse("watchdog", args, desc);
  if (!vm) return kOk;
  auto at = nowFrom(*vm, now);
  if (!at) return report("watchdog", at.error());
  return printOr("watchdog", runWatchdog(state, *at));
}

int cmdPrune(const std::vector<std::string>& args) {
  std::string state, now;
  bool dryRun = false;
  po::options_description desc("pass-home prune");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "dry-run", po::bool_switch(&dryRun), "count what would be pruned, prune nothing")(
      "now", po::value(&now), "act as if it were this time (UTC)");
  auto vm = parse("prune", args, desc);
  if (!vm) return kOk;
  auto at = nowFrom(*vm, now);
  if (!at) return report("prune", at.error());
  return printOr("prune", runPrune(state, *at, dryRun));
}

int cmdRotateHpkeKey(const std::vector<std::string>& args) {
  std::string state;
  po::options_description desc("pass-home rotate-hpke-key");
  desc.add_options()("state", po::value(&state)->required(), "state directory");
  auto vm = parse("rotate-hpke-key", args, desc);
  if (!vm) return kOk;
  auto rotated = rotateClusterHpkeKey(StatePaths(state), wallClockMs(), kRetiredKeyKeepMs);
  if (!rotated) return report("rotate-hpke-key", rotated.error());
  for (const auto& id : rotated->deleted) std::cout << "deleted retired key " << toHex(id) << "\n";
  std::cout << "current key " << toHex(rotated->current.id)
            << "; agents seal to it after their next delivery\n";
  if (std::filesystem::exists(StatePaths(state).databaseConfig())) {
    std::cout << "the database records it as the cluster's key: copy hpke-keys.json and "
                 "home-hpke.pub of "
              << state << " to every other home now (docs/scale-out.md)\n";
  }
  return kOk;
}

int cmdHpkeKeys(const std::vector<std::string>& args) {
  std::string state;
  po::options_description desc("pass-home hpke-keys");
  desc.add_options()("state", po::value(&state)->required(), "state directory")(
      "json", "print a JSON array");
  auto vm = parse("hpke-keys", args, desc);
  if (!vm) return kOk;
  return printOr("hpke-keys",
                 listHpkeKeys(StatePaths(state), kRetiredKeyKeepMs, vm->count("json") > 0));
}

int cmdCheckConfig(const std::vector<std::string>& args) {
  std::string state;
  po::options_description desc("pass-home check-config");
  desc.add_options()("state", po::value(&state)->required(), "state directory");
  auto vm = parse("check-config", args, desc);
  if (!vm) return kOk;
  return printOr("check-config", checkHomeConfig(state));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsageText;
    return args.empty() ? kUsage : kOk;
  }
  std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "init") return cmdInit(args);
    if (command == "enroll") return cmdEnroll(args);
    if (command == "onboard") return cmdOnboard(args);
    if (command == "serve") return cmdServe(args);
    if (command == "migrate") return cmdMigrate(args);
    if (command == "agents") return cmdAgents(args);
    if (command == "revoke") return cmdRevoke(args);
    if (command == "rotate-hpke-key") return cmdRotateHpkeKey(args);
    if (command == "hpke-keys") return cmdHpkeKeys(args);
    if (command == "messages") return cmdMessages(args);
    if (command == "events") return cmdEvents(args);
    if (command == "tickets") return cmdTickets(args);
    if (command == "silence") return cmdSilence(args);
    if (command == "notify-test") return cmdNotifyTest(args);
    if (command == "watchdog") return cmdWatchdog(args);
    if (command == "prune") return cmdPrune(args);
    if (command == "check-config") return cmdCheckConfig(args);
    if (command == "form-reference") {
      std::cout << config::markdownReference(formSchema(), "new-customer form");
      return kOk;
    }
    if (command == "config-reference") {
      std::cout << config::markdownReference(homeSchema(), "home.xml");
      return kOk;
    }
    std::cerr << "pass-home: unknown command '" << command << "'\n\n" << kUsageText;
    return kUsage;
  } catch (const UsageError& e) {
    std::cerr << "pass-home " << command << ": " << e.message << " (see 'pass-home " << command
              << " --help')\n";
    return kUsage;
  } catch (const std::exception& e) {
    std::cerr << "pass-home " << command << ": " << e.what() << "\n";
    return 1;
  }
}

// The INI reader follows Python configparser and keeps lines (images/ini.hpp).
#include "images/ini.hpp"

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

using mfserv::images::IniDocument;
using mfserv::images::IniEntry;
using mfserv::images::parse_ini;
using mfserv::images::read_ini;

namespace {

const IniEntry* find_entry(const IniDocument& doc, const std::string& section,
                           const std::string& key) {
  for (const IniEntry& entry : doc.entries) {
    if (entry.section == section && entry.key == key) {
      return &entry;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("ini: sections, keys and values keep their file and line", "[images][ini]") {
  IniDocument doc = parse_ini(
      "[general]\n"
      "_version = 1.0.0\n"
      "\n"
      "[app_main]\n"
      "  timeout=30  \n"
      "NumProcesses: 4\n",
      "/p/config.ini");
  CHECK(doc.diagnostics.empty());
  REQUIRE(doc.sections.size() == 2);
  CHECK(doc.sections[0].name == "general");
  CHECK(doc.sections[0].line == 1);
  CHECK(doc.sections[1].name == "app_main");
  CHECK(doc.sections[1].line == 4);
  REQUIRE(doc.entries.size() == 3);
  CHECK(doc.entries[0].key == "_version");
  CHECK(doc.entries[0].value == "1.0.0");
  CHECK(doc.entries[0].line == 2);
  CHECK(doc.entries[0].file == "/p/config.ini");
  // Keys are lower-cased (configparser's optionxform), ':' works like '='.
  // An indented line right after a header is a key, not a continuation.
  CHECK(doc.entries[1].key == "timeout");
  CHECK(doc.entries[1].value == "30");
  CHECK(doc.entries[2].key == "numprocesses");
  CHECK(doc.entries[2].value == "4");
  CHECK(doc.entries[2].line == 6);
}

TEST_CASE("ini: full-line comments only, no inline comments", "[images][ini]") {
  IniDocument doc = parse_ini(
      "# a comment\n"
      "; another\n"
      "[s]\n"
      "   # indented comment\n"
      "a = b ; not a comment\n"
      "c = d # nor this\n"
      "url = http://x:80/y?a=b\n",
      "f.ini");
  CHECK(doc.diagnostics.empty());
  REQUIRE(doc.entries.size() == 3);
  CHECK(doc.entries[0].value == "b ; not a comment");
  CHECK(doc.entries[1].value == "d # nor this");
  // Split on the first '=' or ':'.
  CHECK(doc.entries[2].key == "url");
  CHECK(doc.entries[2].value == "http://x:80/y?a=b");
}

TEST_CASE("ini: continuation lines", "[images][ini]") {
  IniDocument doc = parse_ini(
      "[app_main]\n"
      "_cmd_and_args = python3 server.py\n"
      "    --socket {unix_socket_path}\n"
      "# a comment does not end the value\n"
      "\n"
      "    --timeout {timeout}\n"
      "\n"
      "\n"
      "numprocesses = 2\n"
      "empty =\n"
      "  first\n",
      "f.ini");
  CHECK(doc.diagnostics.empty());
  const IniEntry* cmd = find_entry(doc, "app_main", "_cmd_and_args");
  REQUIRE(cmd);
  CHECK(cmd->value == "python3 server.py\n--socket {unix_socket_path}\n\n--timeout {timeout}");
  CHECK(cmd->line == 2);
  const IniEntry* numprocesses = find_entry(doc, "app_main", "numprocesses");
  REQUIRE(numprocesses);
  CHECK(numprocesses->value == "2");
  CHECK(numprocesses->line == 9);
  // configparser keeps the empty first line.
  const IniEntry* empty = find_entry(doc, "app_main", "empty");
  REQUIRE(empty);
  CHECK(empty->value == "\nfirst");
}

TEST_CASE("ini: long lines are read whole", "[images][ini]") {
  std::string command = "python3 -m server " + std::string(500, 'x') + " {unix_socket_path}";
  std::string huge(20000, 'y');
  IniDocument doc =
      parse_ini("[app_main]\n_cmd_and_args = " + command + "\nhuge=" + huge + "\n", "f.ini");
  CHECK(doc.diagnostics.empty());
  REQUIRE(doc.entries.size() == 2);
  CHECK(doc.entries[0].value == command);
  CHECK(doc.entries[1].value == huge);
  CHECK(doc.entries[1].line == 3);
}

TEST_CASE("ini: CRLF line ends and a UTF-8 BOM", "[images][ini]") {
  IniDocument doc = parse_ini("\xEF\xBB\xBF[s]\r\na = 1\r\nb = 2\r\n", "f.ini");
  CHECK(doc.diagnostics.empty());
  REQUIRE(doc.sections.size() == 1);
  CHECK(doc.sections[0].name == "s");
  REQUIRE(doc.entries.size() == 2);
  CHECK(doc.entries[0].value == "1");
  CHECK(doc.entries[1].value == "2");
  CHECK(doc.entries[1].line == 3);
}

TEST_CASE("ini: a line outside any section", "[images][ini]") {
  IniDocument doc = parse_ini(
      "\n"
      "a = 1\n"
      "b = 2\n"
      "[s]\n"
      "c = 3\n",
      "f.ini");
  REQUIRE(doc.diagnostics.size() == 1);  // said once for the run of lines
  CHECK(doc.diagnostics[0].line == 2);
  CHECK(doc.diagnostics[0].file == "f.ini");
  CHECK_THAT(doc.diagnostics[0].message, Catch::Contains("outside any section"));
  REQUIRE(doc.entries.size() == 1);
  CHECK(doc.entries[0].key == "c");
}

TEST_CASE("ini: a line without '=' or ':'", "[images][ini]") {
  IniDocument doc = parse_ini(
      "[s]\n"
      "a = 1\n"
      "just words\n"
      "    and its continuation\n"
      "= no key\n"
      "b = 2\n",
      "f.ini");
  REQUIRE(doc.diagnostics.size() == 2);
  CHECK(doc.diagnostics[0].line == 3);
  CHECK_THAT(doc.diagnostics[0].message, Catch::Contains("without '=' or ':'"));
  CHECK(doc.diagnostics[1].line == 5);
  CHECK_THAT(doc.diagnostics[1].message, Catch::Contains("no key"));
  REQUIRE(doc.entries.size() == 2);
  CHECK(doc.entries[0].value == "1");  // not extended by the bad line's continuation
  CHECK(doc.entries[1].key == "b");
}

TEST_CASE("ini: duplicate sections and keys", "[images][ini]") {
  IniDocument doc = parse_ini(
      "[s]\n"
      "a = 1\n"
      "A = 2\n"
      "[t]\n"
      "[s]\n"
      "b = 3\n"
      "a = 4\n",
      "f.ini");
  REQUIRE(doc.diagnostics.size() == 3);
  CHECK(doc.diagnostics[0].line == 3);
  CHECK(doc.diagnostics[0].key == "s.a");
  CHECK_THAT(doc.diagnostics[0].message,
             Catch::Contains("duplicate key") && Catch::Contains("line 2"));
  CHECK(doc.diagnostics[1].line == 5);
  CHECK_THAT(doc.diagnostics[1].message, Catch::Contains("duplicate section [s]"));
  CHECK(doc.diagnostics[2].line == 7);
  // The first value is kept; the section appears once.
  REQUIRE(find_entry(doc, "s", "a"));
  CHECK(find_entry(doc, "s", "a")->value == "1");
  CHECK(find_entry(doc, "s", "b"));
  CHECK(doc.sections.size() == 2);
}

TEST_CASE("ini: bad section headers", "[images][ini]") {
  IniDocument doc = parse_ini(
      "[general\n"
      "a = 1\n"
      "[] \n"
      "[ok] trailing\n"
      "[ spaced ]\n"
      "b = 2\n",
      "f.ini");
  REQUIRE(doc.diagnostics.size() == 3);
  CHECK(doc.diagnostics[0].line == 1);
  CHECK(doc.diagnostics[1].line == 3);
  CHECK(doc.diagnostics[2].line == 4);
  REQUIRE(doc.sections.size() == 1);
  CHECK(doc.sections[0].name == "spaced");
  REQUIRE(doc.entries.size() == 1);
  CHECK(doc.entries[0].key == "b");
}

TEST_CASE("ini: read_ini reads a file and fails on a missing one", "[images][ini]") {
  mfserv::images::test::TempDir tmp;
  std::string path = tmp.write("x.ini", "[s]\nk = v\n");
  auto doc = read_ini(path);
  REQUIRE(doc.ok());
  CHECK(doc->file == path);
  REQUIRE(doc->entries.size() == 1);
  CHECK(doc->entries[0].file == path);
  auto missing = read_ini(tmp / "missing.ini");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == ENOENT);
}

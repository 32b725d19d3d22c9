//! `mxwatch report`, run as a user runs it (the built binary, a temp dir):
//! its tables equal `mxwatch read --stats` summed by client and hour, and
//! every file it writes is well-formed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mxwatch");

/// Counted columns shared by the CSV and `read`'s client_stats: (CSV header, JSON pointer).
const COLUMNS: [(&str, &str); 19] = [
    ("MX", "/dns/qtype/MX"),
    ("A", "/dns/qtype/A"),
    ("AAAA", "/dns/qtype/AAAA"),
    ("PTR", "/dns/qtype/PTR"),
    ("TXT", "/dns/qtype/TXT"),
    ("qtype_other", "/dns/qtype/other"),
    ("total", "/dns/queries"),
    ("NOERROR", "/dns/rcode/NOERROR"),
    ("NXDOMAIN", "/dns/rcode/NXDOMAIN"),
    ("SERVFAIL", "/dns/rcode/SERVFAIL"),
    ("REFUSED", "/dns/rcode/REFUSED"),
    ("rcode_other", "/dns/rcode/other"),
    ("unresolved_fqdn", "/dns/unresolved_fqdn"),
    ("unresolved_nxdomain", "/dns/unresolved_nxdomain"),
    ("N_c", "/smtp/connections"),
    ("N_f", "/smtp/mail_from"),
    ("rcpt", "/smtp/rcpt"),
    ("user_unknown", "/smtp/user_unknown"),
    ("outbound", "/smtp/outbound"),
];

type Table = BTreeMap<(String, String), Vec<u64>>;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run mxwatch");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

/// `mxwatch report`; returns stdout and the output dir (kept alive by the TempDir).
fn report(files: &[&Path], extra: &[&str]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["report".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--out".to_owned(), dir.path().display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = run(&args);
    assert!(ok, "report failed: {stderr}");
    (stdout, dir)
}

/// `read --stats` summed by (client, hour "YYYY-MM-DDTHH").
fn read_by_hour(file: &Path, extra: &[&str]) -> Table {
    let f = file.display().to_string();
    let mut args = vec!["read", &f, "--stats", "--top", "1000000", "--no-detect"];
    args.extend(extra);
    let (ok, stdout, stderr) = run(&args);
    assert!(ok, "read failed: {stderr}");
    let mut t = Table::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["event"]["dataset"] != "mxwatch.client_stats" {
            continue;
        }
        let ip = v["source"]["ip"]
            .as_str()
            .expect("no folded line")
            .to_owned();
        let hour = v["event"]["start"].as_str().unwrap()[..13].to_owned();
        let row = t
            .entry((ip, hour))
            .or_insert_with(|| vec![0; COLUMNS.len()]);
        for (i, (_, ptr)) in COLUMNS.iter().enumerate() {
            row[i] += v["mxwatch"]
                .pointer(ptr)
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
    }
    t
}

/// table.csv, hour rows only, keyed like `read_by_hour`; also checks every record parses.
fn csv_by_hour(path: &Path) -> (Table, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let records: Vec<csv::StringRecord> = r.records().map(|x| x.expect("csv record")).collect();
    let mut t = Table::new();
    for rec in &records {
        assert_eq!(rec.len(), header.len());
        if &rec[col("period")] != "hour" {
            continue;
        }
        let key = (
            rec[col("client")].to_owned(),
            rec[col("start")][..13].to_owned(),
        );
        let row = COLUMNS
            .iter()
            .map(|(name, _)| rec[col(name)].parse::<u64>().expect("count"))
            .collect();
        assert!(t.insert(key, row).is_none(), "one row per client and hour");
    }
    (t, records)
}

/// The text table's hour rows: (client, "YYYY-MM-DDTHH") -> MX, A, AAAA, PTR, TXT, other, total.
fn text_by_hour(stdout: &str) -> BTreeMap<(String, String), Vec<u64>> {
    let mut t = BTreeMap::new();
    let mut client = None;
    for line in stdout.lines() {
        if let Some(ip) = line.strip_prefix("client ") {
            client = Some(ip.to_owned());
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let is_hour_row = f.len() > 9 && f[0].len() == 10 && f[0].as_bytes()[4] == b'-';
        if let (Some(c), true) = (&client, is_hour_row) {
            let key = (c.clone(), format!("{}T{}", f[0], &f[1][..2]));
            t.insert(key, f[2..9].iter().map(|x| x.parse().unwrap()).collect());
        }
    }
    t
}

/// The report of the 8 most active clients: its CSV and text rows equal
/// `read --stats` for those clients, summed by hour.
fn check_equals_read(file: &Path, extra: &[&str]) {
    let mut args = vec!["--top", "8"];
    args.extend(extra);
    let (stdout, dir) = report(&[file], &args);
    let all = read_by_hour(file, extra);
    assert!(!all.is_empty(), "{} has client_stats", file.display());
    let (csv, _) = csv_by_hour(&dir.path().join("table.csv"));
    let clients: std::collections::BTreeSet<&String> = csv.keys().map(|k| &k.0).collect();
    let in_read: std::collections::BTreeSet<&String> = all.keys().map(|k| &k.0).collect();
    assert_eq!(
        clients.len(),
        in_read.len().min(8),
        "the top clients are reported"
    );
    let expected: Table = all
        .iter()
        .filter(|(k, _)| clients.contains(&k.0))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(csv, expected, "table.csv == read --stats by hour");
    let text = text_by_hour(&stdout);
    let expected_text: BTreeMap<_, Vec<u64>> = expected
        .iter()
        .map(|(k, v)| (k.clone(), v[..7].to_vec()))
        .collect();
    assert_eq!(text, expected_text, "stdout table == read --stats by hour");
}

#[test]
fn dns_table_equals_client_stats_by_hour() {
    check_equals_read(
        &repo("pcaps/dns-mixed.pcap"),
        &["--local-domain", "sub.univ.test"],
    );
}

#[test]
fn smtp_table_equals_client_stats_by_hour() {
    check_equals_read(&repo("pcaps/smtp-user-unknown.pcap"), &[]);
}

/// The lab's captures (branch `lab`), when present in this tree.
#[test]
fn lab_tables_equal_client_stats_by_hour() {
    let Ok(dir) = std::fs::read_dir(repo("pcaps/lab")) else {
        eprintln!("pcaps/lab absent: skipped");
        return;
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-dns.pcap"))
        .collect();
    files.sort();
    for f in files {
        check_equals_read(&f, &["--local-domain", "sub.univ.test"]);
    }
}

fn check_well_formed(dir: &Path) {
    let mut svgs = 0;
    let mut pngs = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        assert!(!bytes.is_empty(), "{name} is empty");
        match p.extension().and_then(|x| x.to_str()) {
            Some("svg") => {
                let text = String::from_utf8(bytes).unwrap();
                let doc = roxmltree::Document::parse(&text)
                    .unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
                assert_eq!(doc.root_element().tag_name().name(), "svg", "{name}");
                assert!(text.contains("<text"), "{name} has text (title, labels)");
                svgs += 1;
            }
            Some("png") => {
                assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is a PNG");
                assert!(bytes.len() > 5000, "{name} has a picture in it");
                pngs += 1;
            }
            Some("csv") => {
                csv_by_hour(&p);
            }
            Some("html") => check_html(dir, &String::from_utf8(bytes).unwrap()),
            _ => panic!("unexpected file {name}"),
        }
    }
    assert!(svgs >= 3 && svgs == pngs, "{svgs} SVG, {pngs} PNG");
}

/// Every `src=` / `href=` of the page names a file that exists beside it.
fn check_html(dir: &Path, html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    let mut refs = 0;
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let target = &rest[..rest.find('"').unwrap()];
            assert!(!target.contains("://"), "no outside resource: {target}");
            assert!(
                dir.join(target).is_file(),
                "{target} referenced but missing"
            );
            refs += 1;
        }
    }
    assert!(refs >= 4, "the page shows figures and links the CSV");
}

#[test]
fn every_file_written_is_well_formed() {
    let (_, dir) = report(&[&repo("pcaps/smtp-user-unknown.pcap")], &["--top", "2"]);
    check_well_formed(dir.path());
    let (stdout, dir) = report(
        &[&repo("pcaps/dns-mixed.pcap")],
        &[
            "--top",
            "3",
            "--local-domain",
            "sub.univ.test",
            "--bin",
            "2",
        ],
    );
    check_well_formed(dir.path());
    assert!(stdout.contains("curves per 2 s bin"), "{stdout}");
    assert!(stdout.contains("Figure 6 fit: R²"), "R² printed");
}

#[test]
fn smtp_server_gets_alpha_and_the_dq_model() {
    let (stdout, dir) = report(&[&repo("pcaps/smtp-user-unknown.pcap")], &["--top", "1"]);
    let (_, records) = csv_by_hour(&dir.path().join("table.csv"));
    let total = records.iter().find(|r| &r[1] == "total").unwrap();
    // 40 sessions, 40 MAIL FROM, 54 user unknown (pcaps/README.md).
    assert_eq!(&total[0], "10.0.25.25");
    assert_eq!((&total[17], &total[18], &total[20]), ("40", "40", "54"));
    assert_eq!(&total[22], "1.0000", "alpha");
    // No outbound: q = 1, D_q = 2 N_S = 80.
    assert_eq!(&total[23], "80.0", "D_q model");
    assert!(stdout.contains("D_q model"));
    assert!(dir.path().join("10.0.25.25-fig5-smtp.svg").is_file());
}

#[test]
fn named_client_only_and_errors_are_one_line() {
    let (stdout, dir) = report(&[&repo("pcaps/dns-mixed.pcap")], &["--client", "10.1.2.65"]);
    assert_eq!(stdout.matches("\nclient ").count(), 1, "{stdout}");
    assert!(dir.path().join("10.1.2.65-fig2-qtype.png").is_file());
    let (ok, _, stderr) = run(&["report", "/nonexistent.pcap", "--out", "/tmp/x"]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // The input's own error, not "no packets" (#13).
    assert!(
        stderr.contains("/nonexistent.pcap: no such file"),
        "{stderr}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let user0 = tmp.path().join("user0.pcap");
    let mut pcap = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 147] {
        pcap.extend(v.to_le_bytes());
    }
    std::fs::write(&user0, pcap).unwrap();
    let out = tmp.path().join("out");
    let (ok, _, stderr) = run(&[
        "report",
        user0.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("link type 147 (USER0)"), "{stderr}");
    let (ok, _, stderr) = run(&["report", "x.pcap", "--dq-q", "2"]);
    assert!(!ok && stderr.contains("--dq-q"), "{stderr}");
}

#[test]
fn a_cut_capture_still_gives_a_report_and_one_error_line() {
    // #13: report keeps what it read, like read does, and exits 1.
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(repo("pcaps/dns-mixed.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() / 2 + 7]).unwrap();
    let out = dir.path().join("out");
    let (ok, stdout, stderr) = run(&[
        "report",
        cut.to_str().unwrap(),
        "--client",
        "192.0.2.254",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mxwatch: ") && !l.contains("warning") && !l.contains("wrote"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("cut.pcap"), "{stderr}");
    assert!(
        stderr.contains("--client 192.0.2.254 sent or received nothing"),
        "{stderr}"
    );
    assert!(out.join("table.csv").exists() && out.join("index.html").exists());
    assert!(!stdout.is_empty());
}

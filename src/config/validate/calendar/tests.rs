use super::*;

/// Expressions on which kinit and `systemd-analyze calendar` must agree.
const EXPRESSIONS: &[&str] = &[
    // shorthands, any case
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "annually",
    "anually",
    "quarterly",
    "semiannually",
    "semi-annually",
    "biannually",
    "bi-annually",
    "DAILY",
    "Hourly",
    "daily UTC",
    "daily utc",
    "minutely UTC",
    "dailyx",
    "dai ly",
    "daily  UTC",
    "UTC",
    " UTC",
    "x UTC",
    "12:00 UTC UTC",
    "12:00 UTC",
    // the case and field ranges
    "*-*-* 99:99:99",
    "*-*-* 23:59:59",
    "*-*-* 24:00:00",
    "*-*-* 00:60:00",
    "*-*-* 00:00:60",
    "*-*-* 00:00:59.999999",
    "*-*-* 00:00:59.9999995",
    "12:00:1.5",
    "12:00:1.",
    "12:00:.5",
    "24:00",
    "23:00",
    "*:60",
    "*:59",
    "*-13-01",
    "*-12-01",
    "*-00-01",
    "*-01-00",
    "*-01-31",
    "*-01-32",
    "*-02-29",
    "*-02-31",
    "2199-1-1",
    "2200-1-1",
    "1969-1-1",
    "1970-1-1",
    "69-1-1",
    "70-1-1",
    "99-1-1",
    "100-1-1",
    "0-1-1",
    "2003-03-05",
    "2003-03-05 05:40",
    "03-05",
    "3-5 1:2",
    "2020-1-1  1:2",
    "*-* 1:2",
    "*-*-*-*",
    "*-*-* *:*:*",
    "*-*-* *:*",
    "*:*",
    // weekdays
    "Mon",
    "mon",
    "monday",
    "MONDAY",
    "Monday",
    "Mondays",
    "Thurs",
    "Thu",
    "Thursday",
    "Mon..Fri",
    "Mon-Fri",
    "Fri..Mon",
    "Wed..Mon",
    "Tue..Tue",
    "Tue-Tue",
    "Mon..Wed..Fri",
    "Mon..Wed,Fri",
    "Mon..Wed,Fri 1:2",
    "Mon,Sun 12-*-* 2,1:23",
    "Mon, 1:2",
    "Mon,",
    "Mon..",
    "Mon-",
    "Mon.Tue",
    "Mon Tue",
    "Mon  1:2",
    "Mon..Sun",
    "Sat,Sun 03:00",
    "Mon..Fri *-*-* 02:30",
    "Mon,,Tue",
    "Mon,Tue,",
    ",Mon",
    "Mon *-*-* 00:00:00",
    // ranges, lists, repetition
    "*-*-* 00/6:00:00",
    "*:0/15",
    "*:2/3",
    "*:50/15",
    "*:30/30",
    "*:30/29",
    "*:5..5",
    "*:5..6",
    "*:5..4",
    "1..2/3:00",
    "*:50..55/15",
    "*:0..59/60",
    "*:0..59/59",
    "0/24:00",
    "0/23:00",
    "00/6:00",
    "1,2,3:4",
    "1,,2:4",
    "1,:4",
    "*:0/0",
    "*:0..59",
    "1..5:0",
    "*-*-1..31/2",
    "*-*-* */2:00",
    "*-1/12-1",
    "*-1/11-1",
    "2020/229-1-1",
    "1970/230-1-1",
    "*:00:00..59.5",
    "*:00:0.5..1.5/0.3",
    "*:00:0/0.5",
    "*:00:30/30",
    "*:00:30/29.999999",
    "12:00:00.000001",
    "00..23:00",
    "0..24:00",
    // from the end of the month
    "*-*~01 04:00",
    "*-*~28",
    "*-*~29",
    "*-*~5/5",
    "*-*~5/4",
    "*-*~3..1",
    "*-*~1..3",
    "*~*",
    "1~1",
    "01-01~01",
    "*-*~*",
    "2020~01-01",
    "*-02~03",
    "*-*~0",
    // timestamps
    "@0",
    "@7258118399",
    "@7258118400",
    "@",
    "@1 12:00",
    "@1 UTC",
    // junk
    "",
    " ",
    " daily",
    "daily ",
    "x",
    "+5:00",
    "05:+5",
    "12",
    "12:",
    ":12",
    "12::00",
    "1-",
    "-1-1",
    "1.5:00",
    "12:00:00:00",
    "*/2",
    "**:00",
    "1 2",
    "$(reboot)",
    "hourly%n",
    "99999999999999999999:00",
    "2147483648:00",
    "*:00:2148",
];

/// Refused on purpose although systemd takes them (a zone other than UTC).
const DELIBERATELY_REFUSED: &[&str] = &["daily Europe/Berlin", "daily GMT", "12:00 Etc/UTC"];

fn systemd_accepts(expr: &str) -> bool {
    let out = std::process::Command::new("systemd-analyze")
        .args(["calendar", "--", expr])
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .expect("systemd-analyze (systemd) is needed to check the calendar grammar");
    out.status.success()
}

#[test]
fn agrees_with_systemd_analyze() {
    let mut disagree = Vec::new();
    for expr in EXPRESSIONS {
        let ours = check(expr).is_ok();
        if ours != systemd_accepts(expr) {
            disagree.push(format!(
                "{expr:?}: kinit {}",
                if ours { "accepts" } else { "refuses" }
            ));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
    // Both verdicts occur in the list.
    assert!(EXPRESSIONS.iter().filter(|e| check(e).is_ok()).count() > 40);
    assert!(EXPRESSIONS.iter().filter(|e| check(e).is_err()).count() > 40);
    for expr in DELIBERATELY_REFUSED {
        assert!(systemd_accepts(expr), "{expr}");
        let why = check(expr).unwrap_err().0;
        assert!(why.contains("UTC"), "{why}");
    }
}

#[test]
fn messages_name_the_field() {
    let why = check("*-*-* 99:99:99").unwrap_err().0;
    assert_eq!(why, "has hour 99, outside 0-23");
    let why = check("*:00:61").unwrap_err().0;
    assert_eq!(why, "has second 61, outside 0-59");
    let why = check("*:30/30").unwrap_err().0;
    assert!(why.contains("every 30 from 30"), "{why}");
    let why = check("Fri..Mon").unwrap_err().0;
    assert!(why.contains("backwards"), "{why}");
}

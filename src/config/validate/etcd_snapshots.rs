//! `spec.etcd.snapshots`: values that reach a systemd timer and a shell script.

use super::super::model::*;
use super::super::problem::ConfigProblem;
use super::text::{check_host_path, describe_char, shown};

/// `spec.etcd.snapshots`. Its values end up in a systemd timer (`OnCalendar=`) and a shell
/// script: the schedule must be a calendar event systemd accepts (which also keeps it to one
/// line of letters, digits, spaces and `*:,/.~@-`), the directory a plain absolute path.
pub(super) fn etcd_snapshots(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let Some(snap) = &spec.etcd.snapshots else {
        return;
    };
    if let Err(why) = check_calendar(&snap.schedule) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-schedule",
                "spec.etcd.snapshots.schedule",
                format!("`{}` {why}", shown(&snap.schedule)),
            )
            .help(format!(
                "a systemd calendar event (`man systemd.time`; `systemd-analyze calendar` shows \
                 what one means) of at most {MAX_SCHEDULE} characters: letters, digits, spaces \
                 and `{SCHEDULE_PUNCTUATION}`, e.g. hourly, daily or \"*-*-* 00/6:00:00\" \
                 (quoted: YAML reads a leading * as an alias)"
            )),
        );
    }
    if !(1..=MAX_KEEP).contains(&snap.keep) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-keep",
                "spec.etcd.snapshots.keep",
                if snap.keep == 0 {
                    "`keep: 0` would remove each snapshot as soon as it is taken".to_string()
                } else {
                    format!("`keep: {}` is more than {MAX_KEEP}", snap.keep)
                },
            )
            .help(format!(
                "how many snapshots each etcd host keeps: 1 to {MAX_KEEP} (24 keeps a day of hourly ones)"
            )),
        );
    }
    if let Err((why, help)) = check_snapshot_dir(&snap.dir) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-dir",
                "spec.etcd.snapshots.dir",
                format!("`{}` {why}", shown(&snap.dir)),
            )
            .help(help),
        );
    } else {
        let data_dir = std::path::Path::new(&spec.etcd.data_dir);
        if data_dir.is_absolute() && std::path::Path::new(&snap.dir).starts_with(data_dir) {
            out.push(
                ConfigProblem::error(
                    "config::etcd-snapshot-dir",
                    "spec.etcd.snapshots.dir",
                    format!(
                        "`{}` is inside etcd's data directory {}",
                        snap.dir, spec.etcd.data_dir
                    ),
                )
                .also("spec.etcd.dataDir", "etcd's data directory")
                .help("keep snapshots outside the data directory: a restore replaces it, and etcd owns what is in it (e.g. /var/lib/etcd-snapshots)"),
            );
        }
    }
}

const MAX_SCHEDULE: usize = 100;
const MAX_KEEP: u32 = 1000;
/// Every character a calendar event kinit accepts can hold besides letters, digits and spaces.
const SCHEDULE_PUNCTUATION: &str = "*:,/.~@-";
/// What `OnCalendar=` gets: one line, then systemd's own calendar grammar and ranges
/// ([`super::calendar`]), so that `*-*-* 99:99:99` is refused here rather than by every timer.
fn check_calendar(s: &str) -> Result<(), String> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains {}; a schedule is one line",
            describe_char(c)
        ));
    }
    if s.trim().is_empty() {
        return Err("is empty".into());
    }
    let n = s.chars().count();
    if n > MAX_SCHEDULE {
        return Err(format!(
            "is {n} characters long; the limit is {MAX_SCHEDULE}"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == ' ' || SCHEDULE_PUNCTUATION.contains(*c)))
    {
        return Err(format!("contains `{c}`, which a schedule cannot"));
    }
    super::calendar::check(s).map_err(|e| e.0)
}

/// The snapshot directory as the script uses it (see [`check_host_path`]).
fn check_snapshot_dir(s: &str) -> Result<(), (String, String)> {
    let example = "e.g. /var/lib/etcd-snapshots";
    check_host_path(s, "the snapshot directory", example).map_err(|(why, help)| {
        if s.starts_with('/') {
            (
                why,
                help.replace(
                    "give it a directory of its own",
                    "give the snapshots a directory of their own",
                ),
            )
        } else {
            (why, format!("the directory on each etcd host, {example}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_schedules() {
        for good in [
            "hourly",
            "daily",
            "*-*-* 00/6:00:00",
            "Mon..Fri *-*-* 02:30",
            "Sat,Sun 03:00",
            "*-*~01 04:00",
            "*:0/15",
            "daily UTC",
            "@1700000000",
            &format!("{}00:00", "0,".repeat((MAX_SCHEDULE - 5) / 2)),
        ] {
            assert_eq!(check_calendar(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "   ",
            "hourly\n[Service]",
            "hourly\r",
            "daily\t",
            "hourly\u{85}",
            "daily; reboot",
            "$(reboot)",
            "hourly%n",
            "daily # comment",
            "\"daily\"",
            "daily\\",
            "täglich",
            "*-*-* 99:99:99",
            "*-*-* 24:00",
            "*:60",
            "*-13-1",
            "Wed..Mon",
            "*:30/30",
            "daily Europe/Berlin",
            &"x".repeat(MAX_SCHEDULE),
            &format!("{}00:00", "0,".repeat(MAX_SCHEDULE / 2)),
        ] {
            assert!(check_calendar(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn snapshot_dirs() {
        for good in [
            "/var/lib/etcd-snapshots",
            "/srv/backup/etcd",
            "/x",
            "/a.b/c_d-e",
        ] {
            assert_eq!(check_snapshot_dir(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/",
            "var/lib/x",
            "./x",
            "/var/lib/../etc",
            "/var/..",
            "/var//lib",
            "/var/lib/",
            "/var/./lib",
            "/var/lib/x y",
            "/var/lib/x\ny",
            "/var/lib/x\ty",
            "/var/lib/'x'",
            "/var/lib/\"x\"",
            "/var/lib/`x`",
            "/var/lib/x\\y",
        ] {
            assert!(check_snapshot_dir(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn snapshots_of(etcd: &str) -> (Option<EtcdSnapshots>, Vec<ConfigProblem>) {
        let text = format!(
            "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: demo}}\nspec:\n  \
             kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {{address: 192.168.9.100}}\n  \
             etcd: {etcd}\n  hosts:\n    - {{name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}}\n"
        );
        let (cfg, report) = crate::config::check(std::path::Path::new("c.yaml"), text);
        let problems = report
            .problems
            .into_iter()
            .filter(|p| p.code != "config::single-control-plane")
            .collect();
        (cfg.unwrap().spec.etcd.snapshots, problems)
    }

    #[test]
    fn snapshots_are_off_unless_set_and_default_field_by_field() {
        assert_eq!(snapshots_of("{mode: systemd}"), (None, vec![]));
        assert_eq!(snapshots_of("{snapshots: null}"), (None, vec![]));
        assert_eq!(
            snapshots_of("{snapshots: {}}"),
            (Some(EtcdSnapshots::default()), vec![])
        );
        assert_eq!(
            snapshots_of("{snapshots: {keep: 7}}"),
            (
                Some(EtcdSnapshots {
                    keep: 7,
                    ..EtcdSnapshots::default()
                }),
                vec![]
            )
        );
        let (s, problems) = snapshots_of(
            "{dataDir: /data/etcd, snapshots: {schedule: \"*-*-* 00/6:00:00\", keep: 1000, dir: /data/etcd-snapshots}}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            s,
            Some(EtcdSnapshots {
                schedule: "*-*-* 00/6:00:00".into(),
                keep: 1000,
                dir: "/data/etcd-snapshots".into(),
            })
        );
        // A sibling of the data dir whose name merely starts with it is not inside it.
        let (_, problems) =
            snapshots_of("{dataDir: /var/lib/etcd, snapshots: {dir: /var/lib/etcd-snapshots}}");
        assert!(problems.is_empty(), "{problems:?}");
        // The data dir itself, and with the data dir written with a trailing slash.
        for etcd in [
            "{dataDir: /var/lib/etcd, snapshots: {dir: /var/lib/etcd}}",
            "{dataDir: /var/lib/etcd/, snapshots: {dir: /var/lib/etcd/snap}}",
        ] {
            let (_, problems) = snapshots_of(etcd);
            // (`/var/lib/etcd/` is also refused as etcd's data dir: not in normal form.)
            let problems: Vec<_> = problems
                .into_iter()
                .filter(|p| p.code != "config::etcd-data-dir")
                .collect();
            assert_eq!(problems.len(), 1, "{etcd}: {problems:?}");
            assert_eq!(problems[0].code, "config::etcd-snapshot-dir");
            assert_eq!(problems[0].path, "spec.etcd.snapshots.dir");
        }
        let (_, problems) = snapshots_of("{snapshots: {keep: -1}}");
        assert_eq!(problems[0].path, "spec.etcd.snapshots.keep");
        let (_, problems) = snapshots_of("{snapshots: yes}");
        assert_eq!(problems[0].code, "config::wrong-type");
    }
}

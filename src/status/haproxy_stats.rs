//! haproxy's `show stat` CSV, reduced to the state of each backend server.

use super::report::BackendServer;

/// The servers of every backend in `csv` (the aggregate FRONTEND/BACKEND rows are left out).
pub fn parse(csv: &str) -> Result<Vec<BackendServer>, String> {
    let mut lines = csv.lines();
    let header = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("# "))
        .ok_or_else(|| "haproxy's stats have no header line".to_string())?;
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("haproxy's stats have no {name:?} column"))
    };
    let (px, sv, status, check) = (
        col("pxname")?,
        col("svname")?,
        col("status")?,
        col("check_status")?,
    );
    let mut servers = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        if matches!(field(sv), "FRONTEND" | "BACKEND" | "") {
            continue;
        }
        servers.push(BackendServer {
            backend: field(px).to_string(),
            server: field(sv).to_string(),
            status: field(status).to_string(),
            check: Some(field(check).to_string()).filter(|c| !c.is_empty()),
        });
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_with_status_and_check() {
        let csv = "# pxname,svname,qcur,status,weight,check_status,\n\
                   apiserver,FRONTEND,,OPEN,,,\n\
                   apiserver,cp1,0,UP,1,L7OK,\n\
                   apiserver,cp2,0,DOWN,1,L4CON,\n\
                   apiserver,cp3,0,no check,1,,\n\
                   apiserver,BACKEND,0,UP,2,,\n\n";
        let s = parse(csv).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[1].server.as_str(), s[1].status.as_str()),
            ("cp2", "DOWN")
        );
        assert_eq!(s[1].check.as_deref(), Some("L4CON"));
        assert!(s[0].is_up() && !s[1].is_up() && s[2].is_up() && s[2].check.is_none());
    }

    #[test]
    fn not_stats_is_an_error() {
        assert!(parse("Unknown command\n").is_err());
        assert!(parse("# pxname,svname\n").unwrap_err().contains("status"));
    }
}

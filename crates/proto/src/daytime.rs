//! The Daytime Protocol (RFC 867) over UDP: any datagram is answered with the
//! date and time as one line of ASCII. The RFC fixes no format; hora sends
//! RFC 2822's, in the server's local time with its UTC offset, so the line is
//! both readable and machine-parseable: `Tue, 24 Nov 2026 08:40:19 +0000\r\n`.

use chrono::{DateTime, TimeZone};

/// The reply line for `now`, ending in CR LF.
pub fn reply<Tz: TimeZone>(now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{}\r\n", now.format("%a, %d %b %Y %H:%M:%S %z"))
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, TimeZone};

    use super::*;

    #[test]
    fn is_one_rfc_2822_line() {
        let brt = FixedOffset::west_opt(3 * 3600).unwrap();
        let now = brt.with_ymd_and_hms(2022, 3, 25, 19, 46, 34).unwrap();
        let line = reply(&now);
        assert_eq!(line, "Fri, 25 Mar 2022 19:46:34 -0300\r\n");
        assert!(DateTime::parse_from_rfc2822(line.trim_end()).is_ok());
        assert!(line.is_ascii());
    }
}

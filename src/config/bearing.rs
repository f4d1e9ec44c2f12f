//! A source's `bearing`: its defect orders (multiples of shaft speed), given
//! as the maker's orders or by the bearing's geometry, from which the
//! standard kinematic formulas give them (outer race fixed, inner turning
//! with the shaft; Randall and Antoni, MSSP 2011, eq. 1-4).

use serde::Deserialize;

/// Defect orders of a rolling bearing: outer race, inner race, ball spin
/// (impacts at twice it) and cage. `geometry` when they were computed from it.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "BearingKeys")]
pub struct Bearing {
    pub bpfo: f64,
    pub bpfi: f64,
    pub bsf: f64,
    pub ftf: Option<f64>,
    pub geometry: Option<Geometry>,
}

/// What a maker's catalogue gives for a bearing designation (e.g. 6205).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Rolling elements in one row.
    pub balls: u32,
    /// Rolling element diameter, mm.
    pub ball_mm: f64,
    /// Pitch diameter (the circle through the elements' centres), mm.
    pub pitch_mm: f64,
    /// Contact angle, degrees (0 for a deep-groove ball bearing).
    pub contact_deg: f64,
}

/// Defect orders a real bearing can have.
pub const ORDER_RANGE: std::ops::RangeInclusive<f64> = 0.1..=50.0;

impl Geometry {
    /// The orders, by the kinematic formulas (no slip).
    pub fn orders(&self) -> Bearing {
        let r = self.ball_mm / self.pitch_mm * self.contact_deg.to_radians().cos();
        let n = self.balls as f64;
        Bearing {
            bpfo: n / 2.0 * (1.0 - r),
            bpfi: n / 2.0 * (1.0 + r),
            bsf: self.pitch_mm / (2.0 * self.ball_mm) * (1.0 - r * r),
            ftf: Some((1.0 - r) / 2.0),
            geometry: Some(*self),
        }
    }

    /// What is wrong with the geometry, naming the key.
    fn check(&self) -> Result<(), String> {
        if !(3..=200).contains(&self.balls) {
            return Err(format!(
                "balls = {}: a rolling bearing has 3..=200 elements in a row",
                self.balls
            ));
        }
        for (key, v) in [("ball-mm", self.ball_mm), ("pitch-mm", self.pitch_mm)] {
            if !(v.is_finite() && v > 0.0 && v < 10_000.0) {
                return Err(format!("{key} = {v} is not a diameter in mm"));
            }
        }
        if self.ball_mm >= self.pitch_mm / 2.0 {
            return Err(format!(
                "ball-mm = {} is not below half of pitch-mm = {}: the balls would not fit on the pitch circle",
                self.ball_mm, self.pitch_mm
            ));
        }
        if !(self.contact_deg.is_finite() && (0.0..90.0).contains(&self.contact_deg)) {
            return Err(format!(
                "contact-deg = {} is not a contact angle (0 <= angle < 90)",
                self.contact_deg
            ));
        }
        Ok(())
    }
}

impl Bearing {
    /// What is wrong with the orders, naming the one.
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [("bpfo", self.bpfo), ("bpfi", self.bpfi), ("bsf", self.bsf)] {
            if !(v.is_finite() && ORDER_RANGE.contains(&v)) {
                return Err(format!(
                    "{key} = {v} is not a defect order (multiples of shaft speed, {}..={})",
                    ORDER_RANGE.start(),
                    ORDER_RANGE.end()
                ));
            }
        }
        match self.ftf {
            Some(v) if !(v.is_finite() && v > 0.0 && v < 1.0) => Err(format!(
                "ftf = {v}: the cage turns slower than the shaft (0 < ftf < 1)"
            )),
            _ => Ok(()),
        }
    }

    /// Orders given directly (`drsnd classify --bearing-orders`, tests).
    pub const fn from_orders(bpfo: f64, bpfi: f64, bsf: f64, ftf: Option<f64>) -> Self {
        Self {
            bpfo,
            bpfi,
            bsf,
            ftf,
            geometry: None,
        }
    }
}

/// The keys of either form, as written; `Bearing::try_from` says which
/// form it is, or what is missing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BearingKeys {
    bpfo: Option<f64>,
    bpfi: Option<f64>,
    bsf: Option<f64>,
    ftf: Option<f64>,
    balls: Option<u32>,
    ball_mm: Option<f64>,
    pitch_mm: Option<f64>,
    contact_deg: Option<f64>,
}

const FORMS: &str = "give the orders (bpfo, bpfi, bsf, optionally ftf) or the geometry \
     (balls, ball-mm, pitch-mm, optionally contact-deg), not both";

impl TryFrom<BearingKeys> for Bearing {
    type Error = String;

    fn try_from(k: BearingKeys) -> Result<Self, String> {
        let orders = [k.bpfo, k.bpfi, k.bsf, k.ftf].iter().any(Option::is_some);
        let geometry = [k.ball_mm, k.pitch_mm, k.contact_deg]
            .iter()
            .any(Option::is_some)
            || k.balls.is_some();
        match (orders, geometry) {
            (true, false) => match (k.bpfo, k.bpfi, k.bsf) {
                (Some(bpfo), Some(bpfi), Some(bsf)) => {
                    Ok(Bearing::from_orders(bpfo, bpfi, bsf, k.ftf))
                }
                _ => Err(format!("bpfo, bpfi and bsf go together; {FORMS}")),
            },
            (false, true) => match (k.balls, k.ball_mm, k.pitch_mm) {
                (Some(balls), Some(ball_mm), Some(pitch_mm)) => {
                    let g = Geometry {
                        balls,
                        ball_mm,
                        pitch_mm,
                        contact_deg: k.contact_deg.unwrap_or(0.0),
                    };
                    g.check()?;
                    Ok(g.orders())
                }
                _ => Err(format!("balls, ball-mm and pitch-mm go together; {FORMS}")),
            },
            _ => Err(FORMS.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Bearing, String> {
        #[derive(Deserialize)]
        struct Doc {
            bearing: Bearing,
        }
        toml::from_str::<Doc>(t)
            .map(|d| d.bearing)
            .map_err(|e| e.message().to_string())
    }

    /// The CWRU rig's SKF 6205 from its catalogue geometry gives the
    /// orders its data set publishes (../shared/cwru/README.md).
    #[test]
    fn the_6205_geometry_gives_its_published_orders() {
        let b = parse("bearing = { balls = 9, ball-mm = 7.94, pitch-mm = 39.04 }").expect("parsed");
        let close = |a: f64, b: f64| (a - b).abs() < 5e-4;
        assert!(close(b.bpfo, 3.5848), "bpfo {}", b.bpfo);
        assert!(close(b.bpfi, 5.4152), "bpfi {}", b.bpfi);
        assert!(close(b.bsf, 2.357), "bsf {}", b.bsf);
        assert!(close(b.ftf.expect("ftf"), 0.39828), "ftf {:?}", b.ftf);
        assert_eq!(b.geometry.map(|g| g.balls), Some(9));
        assert!(b.check().is_ok());
        // A contact angle moves the race orders toward n/2.
        let a =
            parse("bearing = { balls = 9, ball-mm = 7.94, pitch-mm = 39.04, contact-deg = 40 }")
                .expect("parsed");
        assert!(a.bpfo > b.bpfo && a.bpfi < b.bpfi);
    }

    #[test]
    fn absurd_geometry_and_mixed_forms_are_refused_naming_the_key() {
        for (t, want) in [
            (
                "{ balls = 0, ball-mm = 7.94, pitch-mm = 39.04 }",
                "balls = 0",
            ),
            (
                "{ balls = 9, ball-mm = 40, pitch-mm = 39.04 }",
                "ball-mm = 40",
            ),
            (
                "{ balls = 9, ball-mm = -1, pitch-mm = 39.04 }",
                "ball-mm = -1",
            ),
            (
                "{ balls = 9, ball-mm = 7.94, pitch-mm = 39.04, contact-deg = 95 }",
                "contact-deg = 95",
            ),
            ("{ balls = 9, ball-mm = 7.94 }", "pitch-mm go together"),
            ("{ bpfo = 3.5, balls = 9 }", "not both"),
            ("{ bpfo = 3.5, bpfi = 5.4 }", "bsf go together"),
            (
                "{ bpfo = 3.5, bpfi = 5.4, bsf = 2.3, rollers = 9 }",
                "rollers",
            ),
        ] {
            let e = parse(&format!("bearing = {t}")).expect_err(t);
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}

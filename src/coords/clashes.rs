//! Points of different agents that are (nearly) the same: one of them would
//! type into the other's window. Found through a grid of cells one radius
//! wide, so each point is compared only with those in its own and the eight
//! neighbouring cells: linear in the number of points, not quadratic.

use std::collections::HashMap;

use super::{Findings, Point};
use crate::model::{AgentId, Registry};

/// The most clashes reported one by one; the rest are counted.
pub(super) const MAX_REPORTED: usize = 20;

/// Reports every pair of points of different agents within
/// `near_radius_px` of each other (each axis): an error when both agents
/// are configured, a warning otherwise (an unknown agent is not delivered
/// to, so it cannot be typed into by mistake).
pub(super) fn check(
    points: &[(&AgentId, &str, Point)],
    near_radius_px: u32,
    registry: &Registry,
    out: &mut Findings,
) {
    let r = i64::from(near_radius_px);
    let cell = r + 1;
    let key = |p: Point| {
        (
            i64::from(p.x).div_euclid(cell),
            i64::from(p.y).div_euclid(cell),
        )
    };
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, &(_, _, p)) in points.iter().enumerate() {
        grid.entry(key(p)).or_default().push(i);
    }
    let mut found = 0usize;
    for (i, &(a, what_a, pa)) in points.iter().enumerate() {
        let (cx, cy) = key(pa);
        let mut near: Vec<usize> = Vec::new();
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(cell) = grid.get(&(cx + dx, cy + dy)) {
                    near.extend(cell.iter().copied().filter(|&j| j > i));
                }
            }
        }
        near.sort_unstable();
        for j in near {
            let (b, what_b, pb) = points[j];
            let close = (i64::from(pa.x) - i64::from(pb.x)).abs() <= r
                && (i64::from(pa.y) - i64::from(pb.y)).abs() <= r;
            if a == b || !close {
                continue;
            }
            found += 1;
            if found > MAX_REPORTED {
                // Stop looking: a crowd of points on one spot would make
                // this quadratic, and the first ones say what to fix.
                out.warning(
                    None,
                    format!(
                        "more clashing pairs not listed (the first {MAX_REPORTED} are above): \
                         spread the points out, or check that this is the right file"
                    ),
                );
                return;
            }
            let how = if pa == pb {
                "the same point"
            } else {
                "nearly the same point"
            };
            let message = format!(
                "{what_a} {pa} and {b}'s {what_b} {pb} are {how} (within {near_radius_px} px): \
                 one of them would type into the other's window"
            );
            if registry.get(a).is_ok() && registry.get(b).is_ok() {
                out.error(Some(a), message);
            } else {
                out.warning(
                    Some(a),
                    format!("{message} (not both are configured agents)"),
                );
            }
        }
    }
}

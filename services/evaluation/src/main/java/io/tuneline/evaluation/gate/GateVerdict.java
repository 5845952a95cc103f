package io.tuneline.evaluation.gate;

import java.util.List;

/**
 * The quality gate's answer.
 *
 * @param reasons one line per failed condition
 * @param notes conditions that could not be checked, and why (no production version yet)
 */
public record GateVerdict(boolean passed, List<String> reasons, List<String> notes) {}

package io.tuneline.engine.method;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Which linear modules a method targets, by PEFT's rule ({@code check_target_module_exists} in
 * {@code peft/tuners/tuners_utils.py}), the one rule for every model family:
 *
 * <ul>
 *   <li>a list of names ({@link AnyOf}) matches a module whose full name equals a name or ends with
 *       {@code "." + name}: {@code dense} on BERT is every {@code *.dense} (attention output,
 *       intermediate and output of every layer), {@code attn.c_proj} on GPT-2 is the attention's
 *       projection only;
 *   <li>a single string ({@link FullMatch}) is a regular expression the whole name must match
 *       ({@code re.fullmatch}).
 * </ul>
 *
 * Names are full Hugging Face module paths ({@code encoder.layer.0.attention.self.query}).
 */
public sealed interface TargetMatcher permits TargetMatcher.AnyOf, TargetMatcher.FullMatch {

    static TargetMatcher anyOf(List<String> names) {
        return new AnyOf(names);
    }

    static TargetMatcher fullMatch(String regex) {
        return new FullMatch(regex);
    }

    boolean matches(String module);

    /**
     * The modules of {@code modules} that match, in their order.
     *
     * @throws NoTargetMatchException when none does, naming the modules there are
     */
    default List<String> select(Collection<String> modules) {
        List<String> selected = modules.stream().filter(this::matches).toList();
        if (selected.isEmpty()) {
            throw new NoTargetMatchException(this, modules);
        }
        return selected;
    }

    /** Names: PEFT's {@code target_modules} given as a list. */
    record AnyOf(List<String> names) implements TargetMatcher {
        public AnyOf {
            names = List.copyOf(names);
            if (names.isEmpty() || names.stream().anyMatch(String::isBlank)) {
                throw new IllegalArgumentException(
                        "target modules must be non-empty names, were " + names);
            }
        }

        @Override
        public boolean matches(String module) {
            return names.stream().anyMatch(t -> module.equals(t) || module.endsWith("." + t));
        }

        @Override
        public String toString() {
            return names.toString();
        }
    }

    /** A regular expression: PEFT's {@code target_modules} given as a string. */
    record FullMatch(String regex) implements TargetMatcher {
        public FullMatch {
            // Compiled here so a malformed pattern fails when the job is read, not mid-run.
            Pattern.compile(regex);
        }

        @Override
        public boolean matches(String module) {
            return Pattern.compile(regex).matcher(module).matches();
        }

        @Override
        public String toString() {
            return "'" + regex + "' (a regular expression matching the whole module name)";
        }
    }

    /** No module matches the targets: training would silently change nothing it was asked to. */
    final class NoTargetMatchException extends IllegalArgumentException {
        NoTargetMatchException(TargetMatcher targets, Collection<String> modules) {
            super(message(targets, modules));
        }

        private static String message(TargetMatcher targets, Collection<String> modules) {
            // The last path segments first: PEFT users usually target those ("query", "c_attn").
            Set<String> shortNames = new LinkedHashSet<>();
            for (String m : modules) {
                shortNames.add(m.substring(m.lastIndexOf('.') + 1));
            }
            return "no linear module matches the target modules "
                    + targets
                    + "; use "
                    + String.join(", ", new ArrayList<>(shortNames))
                    + " (each matches every module whose name ends with it) or one of the"
                    + " model's linear modules: "
                    + String.join(", ", modules);
        }
    }
}

package io.tuneline.engine.tokenize;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Python's {@code str} methods for Jinjava. Hugging Face renders chat templates with Python's
 * Jinja2, where a string is a Python {@code str}: templates call {@code content.startswith('<')},
 * {@code .strip('\n')}, {@code .split('</think>')[-1]} (Qwen3), {@code .lstrip()}, {@code
 * .upper()}. Jinjava resolves method calls on the Java object instead, so {@code startswith} does
 * not exist and {@code split} would take a regular expression ({@code '<|im_end|>'.split(...)}
 * would go wrong). This resolver answers those names for {@code String} receivers with Python's
 * semantics and leaves every other call to Jinjava's own resolver.
 */
final class PythonStrings extends ELResolver {
    private static final Set<String> METHODS =
            Set.of(
                    "startswith",
                    "endswith",
                    "strip",
                    "lstrip",
                    "rstrip",
                    "split",
                    "rsplit",
                    "upper",
                    "lower",
                    "title",
                    "capitalize",
                    "find",
                    "count",
                    "replace",
                    "splitlines",
                    "isspace",
                    "isdigit",
                    "isalpha");

    @Override
    public Object invoke(
            ELContext context, Object base, Object method, Class<?>[] types, Object[] params) {
        if (!(base instanceof String s)
                || !(method instanceof String name)
                || !METHODS.contains(name)) {
            return null;
        }
        Object[] p = params == null ? new Object[0] : params;
        Object result =
                switch (name) {
                    case "startswith" -> anyOf(p[0], s::startsWith);
                    case "endswith" -> anyOf(p[0], s::endsWith);
                    case "strip" -> rstrip(lstrip(s, chars(p)), chars(p));
                    case "lstrip" -> lstrip(s, chars(p));
                    case "rstrip" -> rstrip(s, chars(p));
                    case "split" -> split(s, p);
                    case "rsplit" -> p.length > 1 ? rsplit(s, p) : split(s, p);
                    case "upper" -> s.toUpperCase(Locale.ROOT);
                    case "lower" -> s.toLowerCase(Locale.ROOT);
                    case "title" -> title(s);
                    case "capitalize" ->
                            s.isEmpty()
                                    ? s
                                    : s.substring(0, 1).toUpperCase(Locale.ROOT)
                                            + s.substring(1).toLowerCase(Locale.ROOT);
                    case "find" -> (long) s.indexOf(String.valueOf(p[0]));
                    case "count" -> count(s, String.valueOf(p[0]));
                    case "replace" -> replace(s, p);
                    case "splitlines" -> List.of(s.split("\\r\\n|\\r|\\n", -1));
                    case "isspace" -> !s.isEmpty() && s.isBlank();
                    case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
                    case "isalpha" -> !s.isEmpty() && s.chars().allMatch(Character::isLetter);
                    default -> throw new IllegalStateException(name);
                };
        context.setPropertyResolved(true);
        return result;
    }

    private interface Test {
        boolean test(String prefix);
    }

    /** Python's startswith/endswith take a string or a tuple of strings. */
    private static boolean anyOf(Object arg, Test test) {
        if (arg instanceof Collection<?> c) {
            return c.stream().anyMatch(o -> test.test(String.valueOf(o)));
        }
        return test.test(String.valueOf(arg));
    }

    /** The characters to strip, or null for whitespace (Python's default). */
    private static String chars(Object[] p) {
        return p.length > 0 && p[0] != null ? String.valueOf(p[0]) : null;
    }

    private static boolean strips(char c, String chars) {
        return chars == null
                ? Character.isWhitespace(c) || Character.isSpaceChar(c)
                : chars.indexOf(c) >= 0;
    }

    private static String lstrip(String s, String chars) {
        int i = 0;
        while (i < s.length() && strips(s.charAt(i), chars)) {
            i++;
        }
        return s.substring(i);
    }

    private static String rstrip(String s, String chars) {
        int i = s.length();
        while (i > 0 && strips(s.charAt(i - 1), chars)) {
            i--;
        }
        return s.substring(0, i);
    }

    /** str.split(sep=None, maxsplit=-1): a literal separator, or runs of whitespace when none. */
    private static List<String> split(String s, Object[] p) {
        String sep = p.length > 0 && p[0] != null ? String.valueOf(p[0]) : null;
        long max = p.length > 1 ? ((Number) p[1]).longValue() : -1;
        List<String> out = new ArrayList<>();
        if (sep == null) {
            String t = s.strip();
            if (t.isEmpty()) {
                return out;
            }
            for (String part : t.split("\\s+", max < 0 ? -1 : (int) max + 1)) {
                out.add(part);
            }
            return out;
        }
        if (sep.isEmpty()) {
            throw new IllegalArgumentException("empty separator");
        }
        int from = 0;
        int at;
        while ((max < 0 || out.size() < max) && (at = s.indexOf(sep, from)) >= 0) {
            out.add(s.substring(from, at));
            from = at + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    private static List<String> rsplit(String s, Object[] p) {
        String sep = String.valueOf(p[0]);
        long max = ((Number) p[1]).longValue();
        List<String> out = new ArrayList<>();
        int end = s.length();
        int at;
        while (out.size() < max && (at = s.lastIndexOf(sep, end - sep.length())) >= 0) {
            out.add(0, s.substring(at + sep.length(), end));
            end = at;
        }
        out.add(0, s.substring(0, end));
        return out;
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.length() + 1L;
        }
        long n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) {
            n++;
        }
        return n;
    }

    private static String replace(String s, Object[] p) {
        String from = String.valueOf(p[0]);
        String to = String.valueOf(p[1]);
        if (p.length < 3) {
            return s.replace(from, to);
        }
        long max = ((Number) p[2]).longValue();
        StringBuilder b = new StringBuilder();
        int start = 0;
        int at;
        for (long n = 0; (max < 0 || n < max) && (at = s.indexOf(from, start)) >= 0; n++) {
            b.append(s, start, at).append(to);
            start = at + from.length();
        }
        return b.append(s.substring(start)).toString();
    }

    private static String title(String s) {
        StringBuilder b = new StringBuilder(s.length());
        boolean up = true;
        for (char c : s.toCharArray()) {
            b.append(up ? Character.toUpperCase(c) : Character.toLowerCase(c));
            up = !Character.isLetter(c);
        }
        return b.toString();
    }

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {}

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}

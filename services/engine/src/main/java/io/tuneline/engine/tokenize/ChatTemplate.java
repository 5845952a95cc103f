package io.tuneline.engine.tokenize;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.tree.Node;
import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jinjava.javax.el.CompositeELResolver;

/**
 * A Hugging Face chat template (Jinja, {@code tokenizer_config.json}'s {@code chat_template})
 * rendered in Java with HubSpot's Jinjava, set up as transformers sets up Jinja2 for {@code
 * apply_chat_template} ({@code trim_blocks}, {@code lstrip_blocks}, loop controls; globals {@code
 * raise_exception}, {@code strftime_now}; the special tokens as {@code bos_token}, {@code
 * eos_token}, {@code pad_token}). What Jinjava lacks and the real templates use is added here:
 *
 * <ul>
 *   <li>Python's {@code str} methods ({@link PythonStrings});
 *   <li>{@code {{-}} whitespace control on expressions and Jinja2's operator precedence (Jinjava's
 *       {@code LegacyOverrides}, off by default for HubSpot's older templates);
 *   <li>two spellings its parser rejects, rewritten in the source before parsing: the reversing
 *       slice {@code x[::-1]} becomes {@code x|reverse}, and each keyword argument of {@code
 *       namespace(...)} is parenthesised, because Jinjava binds {@code name=value} tighter than
 *       arithmetic ({@code namespace(i=messages|length - 1)}, Qwen3's template, otherwise computes
 *       {@code (i=5) - 1}).
 * </ul>
 *
 * {@link #renderWithAnswers} also says where each assistant turn is in the text, for the loss mask.
 */
public final class ChatTemplate {
    /**
     * Marks an assistant's content while locating it; private-use code points (Unicode 15, 16.5).
     */
    static final char ANSWER_START = '\uE000';

    static final char ANSWER_END = '\uE001';

    private static final Pattern REVERSE_SLICE = Pattern.compile("\\[\\s*:\\s*:\\s*-1\\s*]");
    private static final Pattern NAMESPACE_CALL = Pattern.compile("\\bnamespace\\s*\\(");

    private final String source;
    private final String template;
    private final ModelTokens tokens;
    private final List<String> specialTokens;
    private final Jinjava jinjava;
    private final Context parent;
    private final Node tree;

    /**
     * @param specialTokens the tokenizer's special tokens (added tokens marked special), which can
     *     close an assistant turn
     */
    public ChatTemplate(String template, ModelTokens tokens, List<String> specialTokens) {
        this.source = template;
        this.template = rewrite(template);
        this.tokens = tokens;
        this.specialTokens = List.copyOf(specialTokens);
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonStrings());
        resolver.add(com.hubspot.jinjava.el.JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        this.jinjava =
                new Jinjava(
                        JinjavaConfig.newBuilder()
                                .withTrimBlocks(true)
                                .withLstripBlocks(true)
                                .withElResolver(resolver)
                                // A job may bring its own template: Jinjava refuses
                                // getClass() and reflection; this bounds what one render may
                                // build (transformers uses Jinja2's sandbox for the same reason).
                                .withMaxOutputSize(64L << 20)
                                .withLegacyOverrides(
                                        LegacyOverrides.newBuilder()
                                                .withUseTrimmingForNotesAndExpressions(true)
                                                .withParseWhitespaceControlStrictly(true)
                                                .withUseNaturalOperatorPrecedence(true)
                                                .withUsePyishObjectMapper(true)
                                                .withKeepNullableLoopValues(true)
                                                .withAllowAdjacentTextNodes(true)
                                                .withEvaluateMapKeys(true)
                                                .build())
                                .build());
        jinjava.getGlobalContext()
                .registerFunction(
                        new ELFunctionDefinition(
                                "",
                                "raise_exception",
                                ChatTemplate.class,
                                "raiseException",
                                String.class));
        jinjava.getGlobalContext()
                .registerFunction(
                        new ELFunctionDefinition(
                                "",
                                "strftime_now",
                                ChatTemplate.class,
                                "strftimeNow",
                                String.class));
        // Parsed once and rendered many times: Jinjava's renderForResult parses the template and
        // copies the global context on every call, which made a Qwen3 chat cost about 15 ms.
        this.parent = jinjava.getGlobalContextCopy();
        JinjavaInterpreter parser =
                new JinjavaInterpreter(jinjava, new Context(parent), jinjava.getGlobalConfig());
        JinjavaInterpreter.pushCurrent(parser);
        try {
            this.tree = parser.parse(this.template);
            fail(parser.getErrorsCopy());
        } finally {
            JinjavaInterpreter.popCurrent();
        }
    }

    /** The template as the model (or the job) gave it. */
    public String source() {
        return source;
    }

    /**
     * The conversation as text, as {@code tokenizer.apply_chat_template(messages, tokenize=False)}.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return renderRaw(messages, addGenerationPrompt, false);
    }

    /** Where an assistant turn lies in the rendered text, in chars: [start, end). */
    public record Span(int start, int end) {}

    /** A rendered conversation and its assistant turns. */
    public record Rendered(String text, List<Span> answers) {}

    /**
     * Renders the conversation and finds each assistant turn: its content and the special token
     * that closes its turn when the template puts one right after it (only whitespace between), as
     * Hugging Face's {@code {% generation %}} blocks mark them in the templates that have them.
     * Llama 3's and Qwen3's templates have none, and are not prefix-preserving (Qwen3 renders an
     * assistant turn differently once a later user turn follows), so rendering prefixes (TRL's
     * approach) would misplace turns. Instead each assistant content is rendered between two
     * private-use marks; the marked render without its marks must equal the plain render (so the
     * marks changed no decision of the template), and the marks give the spans. The header before a
     * turn, and what a template adds before the content (Qwen3's empty {@code
     * <think>\n\n</think>\n\n} on the last turn), are prompt: read, not learned.
     *
     * @throws ChatTemplateException when the template fails, or changes or drops an assistant's
     *     content so that its turn cannot be located
     */
    public Rendered renderWithAnswers(List<ChatMessage> messages) {
        String plain = renderRaw(messages, false, false);
        String marked = renderRaw(messages, false, true);
        StringBuilder text = new StringBuilder(plain.length());
        List<int[]> pairs = new ArrayList<>();
        int open = -1;
        for (int i = 0; i < marked.length(); i++) {
            char c = marked.charAt(i);
            if (c == ANSWER_START) {
                if (open >= 0) {
                    throw unlocatable();
                }
                open = text.length();
            } else if (c == ANSWER_END) {
                if (open < 0) {
                    throw unlocatable();
                }
                pairs.add(new int[] {open, text.length()});
                open = -1;
            } else {
                text.append(c);
            }
        }
        long assistants = messages.stream().filter(m -> m.role().equals("assistant")).count();
        if (open >= 0 || pairs.size() != assistants || !text.toString().equals(plain)) {
            throw unlocatable();
        }
        List<Span> spans = new ArrayList<>();
        for (int k = 0; k < pairs.size(); k++) {
            int end = pairs.get(k)[1];
            int limit = k + 1 < pairs.size() ? pairs.get(k + 1)[0] : plain.length();
            spans.add(new Span(pairs.get(k)[0], closing(plain, end, limit)));
        }
        return new Rendered(plain, List.copyOf(spans));
    }

    /** The end of the special token that closes a turn ending at {@code end}, else {@code end}. */
    private int closing(String text, int end, int limit) {
        int best = -1;
        int bestEnd = end;
        for (String t : specialTokens) {
            int at = text.indexOf(t, end);
            if (at >= 0 && at + t.length() <= limit && (best < 0 || at < best)) {
                best = at;
                bestEnd = at + t.length();
            }
        }
        return best >= 0 && text.substring(end, best).isBlank() ? bestEnd : end;
    }

    private ChatTemplateException unlocatable() {
        return new ChatTemplateException(
                "the chat template changes or drops an assistant message's content (e.g. reasoning"
                        + " split off by <think> blocks), so the answer to learn cannot be located;"
                        + " give the job a dataset.chat_template that renders assistant content as"
                        + " it is");
    }

    private String renderRaw(List<ChatMessage> messages, boolean generationPrompt, boolean mark) {
        List<Map<String, Object>> list = new ArrayList<>();
        for (ChatMessage m : messages) {
            if (m.content().indexOf(ANSWER_START) >= 0 || m.content().indexOf(ANSWER_END) >= 0) {
                throw new ChatTemplateException(
                        "a message contains U+E000 or U+E001 (private use), which locating answers"
                                + " needs for itself");
            }
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put(
                    "content",
                    mark && m.role().equals("assistant")
                            ? ANSWER_START + m.content() + ANSWER_END
                            : m.content());
            list.add(map);
        }
        Map<String, Object> context = new HashMap<>();
        context.put("messages", list);
        context.put("add_generation_prompt", generationPrompt);
        tokens.bos().ifPresent(t -> context.put("bos_token", t.content()));
        tokens.eos().ifPresent(t -> context.put("eos_token", t.content()));
        tokens.pad().ifPresent(t -> context.put("pad_token", t.content()));
        JinjavaInterpreter interpreter =
                new JinjavaInterpreter(
                        jinjava, new Context(parent, context), jinjava.getGlobalConfig());
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            String out = interpreter.render(tree);
            fail(interpreter.getErrorsCopy());
            return out;
        } finally {
            JinjavaInterpreter.popCurrent();
        }
    }

    private static void fail(List<TemplateError> errors) {
        for (TemplateError e : errors) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                // Jinjava wraps what a function throws; raise_exception's own message is the one
                // a user can act on.
                for (Throwable c = e.getException(); c != null; c = c.getCause()) {
                    if (c instanceof ChatTemplateException refused) {
                        throw refused;
                    }
                }
                throw new ChatTemplateException(
                        "chat template failed"
                                + (e.getLineno() > 0 ? " at line " + e.getLineno() : "")
                                + ": "
                                + e.getMessage());
            }
        }
    }

    /** transformers' {@code raise_exception}: a template refuses its input. */
    public static String raiseException(String message) {
        throw new ChatTemplateException("chat template refused the conversation: " + message);
    }

    /**
     * transformers' {@code strftime_now(format)}: the current local time in Python's strftime
     * format (Llama 3.1's template prints the date with {@code "%d %b %Y"}); the common directives.
     */
    public static String strftimeNow(String format) {
        ZonedDateTime now = ZonedDateTime.now();
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                b.append(c);
                continue;
            }
            char d = format.charAt(++i);
            b.append(
                    switch (d) {
                        case 'd' -> String.format(Locale.ROOT, "%02d", now.getDayOfMonth());
                        case 'm' -> String.format(Locale.ROOT, "%02d", now.getMonthValue());
                        case 'Y' -> String.valueOf(now.getYear());
                        case 'y' -> String.format(Locale.ROOT, "%02d", now.getYear() % 100);
                        case 'H' -> String.format(Locale.ROOT, "%02d", now.getHour());
                        case 'I' ->
                                String.format(Locale.ROOT, "%02d", (now.getHour() + 11) % 12 + 1);
                        case 'M' -> String.format(Locale.ROOT, "%02d", now.getMinute());
                        case 'S' -> String.format(Locale.ROOT, "%02d", now.getSecond());
                        case 'p' -> now.getHour() < 12 ? "AM" : "PM";
                        case 'b' -> now.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                        case 'B' -> now.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                        case 'a' ->
                                now.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                        case 'A' ->
                                now.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                        case 'j' -> String.format(Locale.ROOT, "%03d", now.getDayOfYear());
                        case '%' -> "%";
                        default -> "%" + d;
                    });
        }
        return b.toString();
    }

    /** The two source rewrites described in the class comment. */
    static String rewrite(String template) {
        String t = REVERSE_SLICE.matcher(template).replaceAll(Matcher.quoteReplacement("|reverse"));
        StringBuilder out = new StringBuilder(t.length() + 16);
        Matcher m = NAMESPACE_CALL.matcher(t);
        int copied = 0;
        while (m.find(copied)) {
            out.append(t, copied, m.end());
            int close = matching(t, m.end());
            if (close < 0) {
                copied = m.end();
                continue;
            }
            List<String> args = splitTopLevel(t.substring(m.end(), close));
            List<String> wrapped = new ArrayList<>();
            for (String a : args) {
                Matcher kw =
                        Pattern.compile(
                                        "^(\\s*[A-Za-z_][A-Za-z0-9_]*\\s*)=(?!=)(.*)$",
                                        Pattern.DOTALL)
                                .matcher(a);
                wrapped.add(kw.matches() ? kw.group(1) + "=(" + kw.group(2).strip() + ")" : a);
            }
            out.append(String.join(",", wrapped)).append(')');
            copied = close + 1;
        }
        return out.append(t.substring(copied)).toString();
    }

    /** The index of the parenthesis closing the one before {@code from}, skipping strings. */
    private static int matching(String s, int from) {
        int depth = 1;
        char quote = 0;
        for (int i = from; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == '\\') {
                    i++;
                } else if (c == quote) {
                    quote = 0;
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '(' || c == '[' || c == '{') {
                depth++;
            } else if ((c == ')' || c == ']' || c == '}') && --depth == 0) {
                return i;
            }
        }
        return -1;
    }

    private static List<String> splitTopLevel(String s) {
        List<String> out = new ArrayList<>();
        int depth = 0;
        char quote = 0;
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == '\\') {
                    i++;
                } else if (c == quote) {
                    quote = 0;
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '(' || c == '[' || c == '{') {
                depth++;
            } else if (c == ')' || c == ']' || c == '}') {
                depth--;
            } else if (c == ',' && depth == 0) {
                out.add(s.substring(start, i));
                start = i + 1;
            }
        }
        out.add(s.substring(start));
        return out;
    }
}

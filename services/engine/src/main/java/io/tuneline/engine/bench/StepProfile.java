package io.tuneline.engine.bench;

import static net.bytebuddy.matcher.ElementMatchers.hasSuperType;
import static net.bytebuddy.matcher.ElementMatchers.isInterface;
import static net.bytebuddy.matcher.ElementMatchers.isMethod;
import static net.bytebuddy.matcher.ElementMatchers.isStatic;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.not;
import static net.bytebuddy.matcher.ElementMatchers.takesArguments;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import net.bytebuddy.agent.ByteBuddyAgent;
import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.matcher.ElementMatcher;

/**
 * Where a training step's time and its calls into libtorch go, for {@code
 * bench/training-throughput.sh}'s profile mode: the engine's own methods are instrumented in the
 * running JVM (nothing in the trainer knows about it), each phase's time is taken exclusive of the
 * phases it contains, and every outermost call into DJL's JNI layer ({@code
 * ai.djl.pytorch.jni.JniUtils}, one Java-to-native crossing each, a few make two) is counted
 * against the phase it happens in. Calls into the tokenizer's native library are not counted.
 *
 * <p>Phases: {@code data} (batch encoding: {@code ClassifierTrainer.encode}, tokenization included,
 * or {@code CausalLmTrainer.Batch.of}), {@code forward} (the task's loss, model and loss function,
 * less {@code data}), {@code backward} ({@code GradientCollector.backward}), {@code clip} ({@code
 * TrainingLoop.gradientNorm}; the scaling happens inside the optimizer), {@code optimizer} ({@code
 * AdamW.update}, once per step for every trained tensor) and {@code loop} (what {@code
 * TrainingLoop.run} does around them: seeding, gradient handles, the loss read-back, closing the
 * step's arrays). Single-threaded: only the thread that installed it is measured.
 */
public final class StepProfile {
    static final String[] PHASES = {"data", "forward", "backward", "clip", "optimizer", "loop"};
    static final int DATA = 0;
    static final int FORWARD = 1;
    static final int BACKWARD = 2;
    static final int CLIP = 3;
    static final int OPTIMIZER = 4;
    static final int LOOP = 5;

    private static final int MAX_DEPTH = 64;
    private static final long[] NANOS = new long[PHASES.length];
    private static final long[] JNI = new long[PHASES.length];
    private static final long[] CALLS = new long[PHASES.length];
    private static final long[] START = new long[MAX_DEPTH];
    private static final long[] START_JNI = new long[MAX_DEPTH];
    private static final long[] CHILD_NANOS = new long[MAX_DEPTH];
    private static final long[] CHILD_JNI = new long[MAX_DEPTH];
    private static final int[] PHASE_AT = new int[MAX_DEPTH];

    // Which JNI methods each phase calls, by name: where its count comes from.
    @SuppressWarnings("unchecked")
    private static final Map<String, long[]>[] BY_NAME = new Map[PHASES.length];

    static {
        for (int i = 0; i < PHASES.length; i++) {
            BY_NAME[i] = new HashMap<>();
        }
    }

    private static volatile Thread owner;
    private static int depth;
    private static long jniCalls;
    private static int jniDepth;

    private StepProfile() {}

    /** The constant phase index an advice is bound to. */
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.PARAMETER)
    @interface Phase {}

    /** Instruments the engine for the calling thread; call before the first step. */
    static void install() {
        owner = Thread.currentThread();
        new AgentBuilder.Default()
                .disableClassFormatChanges()
                .with(AgentBuilder.RedefinitionStrategy.RETRANSFORMATION)
                .with(AgentBuilder.Listener.StreamWriting.toSystemError().withErrorsOnly())
                .type(named("ai.djl.pytorch.jni.JniUtils"))
                .transform(
                        (b, type, loader, module, domain) ->
                                b.visit(Advice.to(JniAdvice.class).on(isStatic().and(isMethod()))))
                .type(named("io.tuneline.engine.train.ClassifierTrainer"))
                .transform(phase(DATA, named("encode")))
                .type(named("io.tuneline.engine.train.CausalLmTrainer$Batch"))
                .transform(phase(DATA, named("of")))
                .type(
                        hasSuperType(named("io.tuneline.engine.train.TrainingLoop$Task"))
                                .and(not(isInterface())))
                // Tasks that run forward and backward together (segments, activation checkpointing)
                // override lossAndBackward and never call loss: both are the forward phase, less
                // the backward and data phases inside them.
                .transform(phase(FORWARD, named("loss").or(named("lossAndBackward"))))
                .type(named("ai.djl.pytorch.engine.PtGradientCollector"))
                .transform(phase(BACKWARD, named("backward").and(takesArguments(1))))
                .type(named("io.tuneline.engine.train.TrainingLoop"))
                .transform(phase(CLIP, named("gradientNorm")))
                .type(named("io.tuneline.engine.train.TrainingLoop"))
                .transform(phase(LOOP, named("run")))
                .type(named("io.tuneline.engine.train.AdamW"))
                .transform(phase(OPTIMIZER, named("update")))
                .installOn(ByteBuddyAgent.install());
    }

    private static AgentBuilder.Transformer phase(
            int phase, ElementMatcher<? super MethodDescription> methods) {
        return (b, type, loader, module, domain) ->
                b.visit(
                        Advice.withCustomMapping()
                                .bind(Phase.class, phase)
                                .to(PhaseAdvice.class)
                                .on(methods));
    }

    /** Forgets what was measured so far (the warm-up). */
    static void reset() {
        java.util.Arrays.fill(NANOS, 0);
        java.util.Arrays.fill(JNI, 0);
        java.util.Arrays.fill(CALLS, 0);
        for (Map<String, long[]> m : BY_NAME) {
            m.clear();
        }
    }

    /**
     * Per step, each phase's JNI calls by {@code JniUtils} method, most frequent first: one line
     * per phase.
     */
    static String byName(int steps) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < PHASES.length; i++) {
            out.append(PHASES[i]).append(':');
            BY_NAME[i].entrySet().stream()
                    .sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]))
                    .forEach(
                            e ->
                                    out.append(
                                            String.format(
                                                    Locale.ROOT,
                                                    " %s=%.1f",
                                                    e.getKey(),
                                                    (double) e.getValue()[0] / steps)));
            out.append('\n');
        }
        return out.toString();
    }

    /** Per step: each phase's milliseconds, JNI calls and entries, as a JSON object. */
    static String json(int steps) {
        StringBuilder out = new StringBuilder("{");
        long total = 0;
        long totalJni = 0;
        for (int i = 0; i < PHASES.length; i++) {
            total += NANOS[i];
            totalJni += JNI[i];
            out.append(
                    String.format(
                            Locale.ROOT,
                            "\"%s\":{\"ms\":%.2f,\"jni\":%.1f,\"calls\":%.1f},",
                            PHASES[i],
                            NANOS[i] / 1e6 / steps,
                            (double) JNI[i] / steps,
                            (double) CALLS[i] / steps));
        }
        return out.append(
                        String.format(
                                Locale.ROOT,
                                "\"step\":{\"ms\":%.2f,\"jni\":%.1f}}",
                                total / 1e6 / steps,
                                (double) totalJni / steps))
                .toString();
    }

    public static void jniEnter(String method) {
        if (Thread.currentThread() == owner && jniDepth++ == 0) {
            jniCalls++;
            if (depth > 0) {
                BY_NAME[PHASE_AT[depth - 1]].computeIfAbsent(method, k -> new long[1])[0]++;
            }
        }
    }

    public static void jniExit() {
        if (Thread.currentThread() == owner) {
            jniDepth--;
        }
    }

    public static void enter(int phase) {
        if (Thread.currentThread() != owner) {
            return;
        }
        PHASE_AT[depth] = phase;
        START[depth] = System.nanoTime();
        START_JNI[depth] = jniCalls;
        CHILD_NANOS[depth] = 0;
        CHILD_JNI[depth] = 0;
        depth++;
    }

    public static void exit(int phase) {
        if (Thread.currentThread() != owner) {
            return;
        }
        depth--;
        long nanos = System.nanoTime() - START[depth];
        long jni = jniCalls - START_JNI[depth];
        NANOS[phase] += nanos - CHILD_NANOS[depth];
        JNI[phase] += jni - CHILD_JNI[depth];
        CALLS[phase]++;
        if (depth > 0) {
            CHILD_NANOS[depth - 1] += nanos;
            CHILD_JNI[depth - 1] += jni;
        }
    }

    static final class JniAdvice {
        private JniAdvice() {}

        @Advice.OnMethodEnter
        static void enter(@Advice.Origin("#m") String method) {
            StepProfile.jniEnter(method);
        }

        @Advice.OnMethodExit(onThrowable = Throwable.class)
        static void exit() {
            StepProfile.jniExit();
        }
    }

    static final class PhaseAdvice {
        private PhaseAdvice() {}

        @Advice.OnMethodEnter
        static void enter(@Phase int phase) {
            StepProfile.enter(phase);
        }

        @Advice.OnMethodExit(onThrowable = Throwable.class)
        static void exit(@Phase int phase) {
            StepProfile.exit(phase);
        }
    }
}

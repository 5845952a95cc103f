package io.tuneline.training;

import java.nio.charset.StandardCharsets;
import java.util.List;

/** Shared test inputs: a tiny sentiment set and the command that runs a worker class. */
public final class TrainingFixtures {
    private TrainingFixtures() {}

    /** 16 prepared training lines, 8 per label, as the preprocessing service writes them. */
    public static byte[] tinySentimentJsonl() {
        String[] pos = {
            "I loved it, wonderful.",
            "Great and delightful.",
            "Fantastic service, very happy.",
            "The best book ever.",
            "Delicious food, friendly staff.",
            "Brilliant and moving.",
            "Very pleased with it.",
            "Superb, recommended."
        };
        String[] neg = {
            "I hated it, awful.",
            "Terrible and useless.",
            "Horrible service, very sad.",
            "The worst book ever.",
            "Cold food, rude staff.",
            "Boring and painful.",
            "Very unhappy with it.",
            "Dreadful, avoid it."
        };
        StringBuilder lines = new StringBuilder();
        for (int i = 0; i < pos.length; i++) {
            lines.append("{\"text\":\"").append(pos[i]).append("\",\"label\":\"pos\"}\n");
            lines.append("{\"text\":\"").append(neg[i]).append("\",\"label\":\"neg\"}\n");
        }
        return lines.toString().getBytes(StandardCharsets.UTF_8);
    }

    /**
     * {@code tuneline.training.local.worker-command}: this JVM's java running {@code mainClass} on
     * the test class path, after {@code jvmOptions}.
     */
    public static String workerCommand(Class<?> mainClass, String... jvmOptions) {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> parts = new java.util.ArrayList<>();
        parts.add(java);
        parts.addAll(List.of(jvmOptions));
        parts.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
        return String.join(",", parts);
    }
}

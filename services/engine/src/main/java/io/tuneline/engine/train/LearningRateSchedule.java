package io.tuneline.engine.train;

/**
 * The learning rate at each optimizer step: a linear warm-up from 0 over {@code warmupSteps}, then
 * constant, linear decay to 0, or cosine decay to 0 (Loshchilov & Hutter 2017, SGDR, without
 * restarts) — the shapes of Hugging Face's {@code get_constant_schedule_with_warmup}, {@code
 * get_linear_schedule_with_warmup} and {@code get_cosine_schedule_with_warmup}.
 */
public sealed interface LearningRateSchedule {
    /** The rate for 1-based {@code step} of {@code totalSteps}. */
    double at(long step);

    record Constant(double peak, long warmupSteps) implements LearningRateSchedule {
        @Override
        public double at(long step) {
            return step <= warmupSteps ? warmup(peak, step, warmupSteps) : peak;
        }
    }

    record Linear(double peak, long warmupSteps, long totalSteps) implements LearningRateSchedule {
        @Override
        public double at(long step) {
            if (step <= warmupSteps) {
                return warmup(peak, step, warmupSteps);
            }
            return peak
                    * Math.max(
                            0,
                            (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
        }
    }

    record Cosine(double peak, long warmupSteps, long totalSteps) implements LearningRateSchedule {
        @Override
        public double at(long step) {
            if (step <= warmupSteps) {
                return warmup(peak, step, warmupSteps);
            }
            double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
            return peak * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
        }
    }

    private static double warmup(double peak, long step, long warmupSteps) {
        return warmupSteps == 0 ? peak : peak * step / warmupSteps;
    }

    /** The schedule shapes a job can name. */
    enum Shape {
        LINEAR,
        COSINE,
        CONSTANT
    }

    static LearningRateSchedule of(Shape shape, double peak, long warmupSteps, long totalSteps) {
        return switch (shape) {
            case LINEAR -> new Linear(peak, warmupSteps, totalSteps);
            case COSINE -> new Cosine(peak, warmupSteps, totalSteps);
            case CONSTANT -> new Constant(peak, warmupSteps);
        };
    }
}
